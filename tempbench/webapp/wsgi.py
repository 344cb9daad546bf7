"""WSGI entry point for gunicorn: ``gunicorn tempbench.webapp.wsgi:app``.

Each gunicorn worker imports this module and builds its own app and store from the
``TEMPBENCH_*`` environment variables that :class:`tempbench.webapp.server.AppServer` sets.
"""

from tempbench.webapp import create_app_from_env

app = create_app_from_env()
