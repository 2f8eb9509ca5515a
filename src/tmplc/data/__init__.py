"""Dataset shaping: read rows, normalize them into ``messages``, report every rejected row.

::

    rows = read_rows("data.jsonl")                       # JSONL / JSON / CSV / Parquet / datasets.Dataset
    convs, report = normalize_rows(rows, default_system="You are helpful.")
    convs, report = normalize_rows(rows, merged_prompt="{instruction}[[\\n\\nInput: {input}]]",
                                   output_column="output", conversation_extension=3, seed=3407)

Row numbers are 0-based positions among the data rows (the first data row is row 0: a CSV
header is not a row, a JSONL blank line is skipped and not counted), the same in every message,
report and output.  ``report.rows_in == len(convs) + report.rows_rejected`` always holds.
"""

from tmplc.data.merged import MergedPrompt
from tmplc.data.normalize import NormalizeReport, normalize_row, normalize_rows, row_tools
from tmplc.data.readers import read_rows

__all__ = ["MergedPrompt", "NormalizeReport", "normalize_row", "normalize_rows", "read_rows", "row_tools"]
