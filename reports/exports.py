"""CSV downloads of report tables: the table's own columns and cells, streamed (or,
for a mail's attachment, written whole)."""

import csv
import io

from reports.store_records import StoreTableData, resolve
from utilities.csv import csv_cell, streaming_csv


def exported_records(table, paths):
    """The table's rows as tuples of the `paths`' values, in the table's order: one
    query read in chunks, or, for records in the event store, its pages."""
    if isinstance(table.data, StoreTableData):
        return ([resolve(row, path) for path in paths] for row in table.data)
    queryset = table.data.data  # ordered as the table is sorted
    return queryset.values_list(*paths).iterator(chunk_size=2000)


def exported_columns(table) -> list:
    return [c for c in table.columns.iterall() if not c.column.exclude_from_export]


def export_header(column) -> str:
    """A column's CSV header: its own where the page's names another unit."""
    return str(getattr(column.column, "export_header", None) or column.header)


def table_rows(table) -> tuple[list[str], object]:
    """`table`'s CSV header and rows: its shown columns, its export values, its order."""
    columns = exported_columns(table)

    def values():
        for row in table.rows:
            yield [row.get_cell_value(c.name) for c in columns]

    return [export_header(c) for c in columns], values()


def table_csv(table, filename: str):
    """Stream `table` as CSV."""
    header, rows = table_rows(table)
    return streaming_csv(header, rows, filename)


def table_csv_text(table) -> str:
    """`table` as one CSV text, the same cells as its download."""
    header, rows = table_rows(table)
    out = io.StringIO()
    writer = csv.writer(out)
    for cells in (header, *rows):
        writer.writerow([csv_cell(c) for c in cells])
    return out.getvalue()


def queryset_table_csv(table, filename: str):
    """Stream a queryset table as CSV through its `export_values` (column name →
    (values() path, writer)): one query read in chunks, constant memory, and the
    same columns and order as the table."""
    columns = exported_columns(table)
    paths, writers = zip(*(table.export_values[c.name] for c in columns), strict=True)

    def values():
        for record in exported_records(table, paths):
            yield ["" if v is None else write(v) for write, v in zip(writers, record, strict=True)]

    return streaming_csv([export_header(c) for c in columns], values(), filename)
