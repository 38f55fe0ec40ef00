"""nbval settings for the book: stderr (warnings, tqdm) and HTML reprs are
not compared, so only what a chapter prints on purpose can fail a cell."""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr", "text/html", "image/svg+xml",
                                   "application/vnd.jupyter.widget-view+json")
