"""The demo (`python demo.py`): base model vs memory side by side, each token tinted by how much memory entered.

One concern per module:
    args.py      the command line and its checks (no torch; bad input is one line and exit 2)
    session.py   a run loaded for the demo: model, trained facts, config summary
    gates.py     the gate readout: both answers and the memory entering at every token, per memory layer
    heat.py      the one colour scale (terminal, HTML, PNG)
    terminal.py  the rich view and the interactive session
    page.py      the static, self-contained HTML page
    gallery.py   report.py's gate heat map PNGs
"""
