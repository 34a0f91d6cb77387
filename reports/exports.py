"""CSV downloads of report tables: the table's own columns and cells, streamed."""

from django_tables2.rows import BoundRow

from usage_portal.api.csv import streaming_csv


def table_csv(table, filename: str, records=None):
    """Stream `table` as CSV: its shown columns, its export values, in its order.

    `records` replaces the table's data for large querysets (an iterator that
    does not cache), so a download of every record keeps constant memory.
    """
    columns = [c for c in table.columns.iterall() if not c.column.exclude_from_export]
    header = [str(c.header) for c in columns]
    rows = table.rows if records is None else (BoundRow(r, table) for r in records)

    def values():
        for row in rows:
            yield [row.get_cell_value(c.name) for c in columns]

    return streaming_csv(header, values(), filename)
