"""The address kinds, one module each (`engram.address=<module name>`), each exposing `Address`: an nn.Module class
built by name from `rows`, `heads` (head blocks) and the config keys its constructor names (sections.py's `build`).

The interface is the `Address` protocol in engram/protocols.py: an nn.Module deciding which looked-up rows may
contribute, per head; optionally (`AddressOptions.retriever`, address=hybrid) it also finds rows by content.
Each kind module is what config validation reads (torch-free); the torch code of `address=<name>` is `_<name>.py`.
"""
