"""Model text for Textual widgets: control characters escaped (engine.text.printable) and never
parsed as markup, so a node named '[b]x' or carrying ESC]52 is shown as the characters it has."""

from engine.text import printable_lines


def shown(text):
    from textual.content import Content

    return Content(printable_lines("" if text is None else str(text)))
