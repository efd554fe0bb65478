"""`python demo.py ...` = `engram-demo ...` (engram/entry/demo.py): base model vs Engram memory, side by side.

    python demo.py                                         # interactive, on the newest outputs/default/<date>
    python demo.py run_dir=outputs/default/<date>          # or engram_path=<run dir>/engram.safetensors
    python demo.py --prompts prompts.txt                   # no questions asked (recordings)
    python demo.py --html demo.html                        # one self-contained HTML page
"""

from engram.entry.demo import cli

if __name__ == "__main__":
    cli()
