"""Model text for Textual widgets: control characters escaped (engine.text.printable) and never
parsed as markup, so a node named '[b]x' or carrying ESC]52 is shown as the characters it has."""


def shown(text):
    from textual.content import Content

    from engine.text import printable_lines  # here, not at start-up (tests/test_layering.py)

    return Content(printable_lines("" if text is None else str(text)))


def shown_cell(text):
    """The same for a DataTable cell, which takes rich Text (a str cell would be parsed as markup)."""
    from rich.text import Text

    from engine.text import printable

    return Text(printable("" if text is None else str(text)))
