"""CSV downloads of report tables: the table's own columns and cells, streamed."""

from utilities.csv import streaming_csv


def exported_columns(table) -> list:
    return [c for c in table.columns.iterall() if not c.column.exclude_from_export]


def export_header(column) -> str:
    """A column's CSV header: its own where the page's names another unit."""
    return str(getattr(column.column, "export_header", None) or column.header)


def table_csv(table, filename: str):
    """Stream `table` as CSV: its shown columns, its export values, in its order."""
    columns = exported_columns(table)

    def values():
        for row in table.rows:
            yield [row.get_cell_value(c.name) for c in columns]

    return streaming_csv([export_header(c) for c in columns], values(), filename)


def queryset_table_csv(table, filename: str):
    """Stream a queryset table as CSV through its `export_values` (column name →
    (values() path, writer)): one query read in chunks, constant memory, and the
    same columns and order as the table."""
    columns = exported_columns(table)
    paths, writers = zip(*(table.export_values[c.name] for c in columns), strict=True)
    queryset = table.data.data  # ordered as the table is sorted

    def values():
        for record in queryset.values_list(*paths).iterator(chunk_size=2000):
            yield ["" if v is None else write(v) for write, v in zip(writers, record, strict=True)]

    return streaming_csv([export_header(c) for c in columns], values(), filename)
