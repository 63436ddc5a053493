"""ipcbench report: tables, plots, run-to-run comparison, tracker exports, run history.

Data flows one way: ``load`` (Google Benchmark JSON -> ``model.Run``) -> ``compute``
(tables, floors, ratings, noise) -> ``layout`` (a neutral document) -> ``render_html`` /
``render_md``; ``render_csv``, ``plots``, ``compare`` and ``export`` read the same model.
``history`` records loaded runs in SQLite and gives back ``Run``s of pooled repetitions
(a baseline for ``compare``) and per-run points of one cell (``plots.trend``).
"""


class ReportError(Exception):
    """Bad input or an output that cannot be written: the CLI prints one line, exits 2."""
