"""The evaluation report of one window: plots from the store, HTML in two languages, PDF.

Owns the report's data and SVG plots (report.py), its page and labels (report_html.py),
its verdict section (report_verdict.py) and printing with a sandboxed Chromium
(report_print.py). May import storage/, evaluation/ and the shared base.
"""
