"""The field console: the collector's web pages for people, at `/` (docs/console.md).

Sign-in sessions (sessions.py), the words in en and zh (i18n.py), the live figures of a
window (live.py, pure), the routes (routes.py), the static files (assets.py, ../static/) and
the Jinja2 templates (templates/). The windows work itself is the API's (api.py builds
`routes.WindowOps`). May import what web/ may, and web's auth, offloop and metrics modules;
nothing in web/ but api.py imports it.
"""
