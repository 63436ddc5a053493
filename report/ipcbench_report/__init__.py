"""ipcbench report: tables, plots, run-to-run comparison and tracker exports.

Data flows one way: ``load`` (Google Benchmark JSON -> ``model.Run``) -> ``compute``
(tables, floors, ratings, noise) -> ``layout`` (a neutral document) -> ``render_html`` /
``render_md``; ``render_csv``, ``plots``, ``compare`` and ``export`` read the same model.
"""


class ReportError(Exception):
    """Bad input or an output that cannot be written: the CLI prints one line, exits 2."""
