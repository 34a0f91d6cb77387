"""Read an HTML table of a page back into rows of text, as a person would read it."""

from html.parser import HTMLParser


class TableReader(HTMLParser):
    def __init__(self, table_id: str):
        super().__init__()
        self.table_id = table_id
        self.depth = 0  # >0 while inside the wanted table
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def html_table(page: str, table_id: str) -> list[list[str]]:
    """Header row first, then the body rows, each a list of cell texts."""
    reader = TableReader(table_id)
    reader.feed(page)
    if not reader.rows:
        raise AssertionError(f"no table #{table_id} on the page")
    return reader.rows
