#!/usr/bin/python3
"""Writes examples/tutorial.ipynb, the Jupyter notebook version of examples/tutorial.py: the
script's imports, a cell that sets its arguments from the environment (MPCD_TARGET, default
localhost:50051; MPCD_TUTORIAL_OUT, default build/tutorial), then one heading and one code cell per
section of its main(), unchanged. The prose is docs/tutorial.md's.

    /usr/bin/python3 examples/tutorial_notebook.py > examples/tutorial.ipynb

The Tutorial test checks that the committed notebook is what this writes, and runs it headless
(jupyter nbconvert --execute) against a real mpcd.
"""

import os
import re
import sys
import textwrap

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
SECTION = re.compile(r"^    # --- (\d+)\. (.*?) -+$")

SETUP = """\
# The script's command line, from the environment (the test sets both).
args = argparse.Namespace(target=os.environ.get("MPCD_TARGET", "localhost:50051"),
                          out=os.environ.get("MPCD_TUTORIAL_OUT", "build/tutorial"), check=True)
os.makedirs(args.out, exist_ok=True)"""


def notebook(script_text):
    """The notebook of tutorial.py's text."""
    lines = script_text.splitlines()
    docstring_end = lines.index('"""', 1)
    imports = "\n".join(lines[docstring_end + 1:lines.index("def main():")]).strip()
    body = lines[lines.index("def main():") + 1:lines.index('if __name__ == "__main__":')]
    sections, title, current = [], None, []
    for line in body:
        match = SECTION.match(line)
        if match is not None:
            if title is not None:
                sections.append((title, current))
            title, current = "%s. %s" % match.groups(), []
        elif title is not None:
            current.append(line)
    sections.append((title, current))
    cells = [
        nbformat.v4.new_markdown_cell(
            "# mpcd tutorial\n\nThe notebook version of `examples/tutorial.py`; the explanations "
            "are in `docs/tutorial.md`. It needs a running mpcd (`MPCD_TARGET`, default "
            "`localhost:50051`) and the `mpcd` package on the path "
            "(`PYTHONPATH=client/python:build/python`)."),
        nbformat.v4.new_code_cell(imports),
        nbformat.v4.new_code_cell(SETUP),
    ]
    for title, code in sections:
        cells.append(nbformat.v4.new_markdown_cell("## " + title))
        cells.append(nbformat.v4.new_code_cell(textwrap.dedent("\n".join(code)).strip()))
    book = nbformat.v4.new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    return book


def main():
    with open(os.path.join(HERE, "tutorial.py")) as f:
        book = notebook(f.read())
    # Fixed cell ids, so that the file only changes when the script does.
    for index, cell in enumerate(book.cells):
        cell["id"] = "cell-%02d" % index
    nbformat.write(book, sys.stdout)


if __name__ == "__main__":
    main()
