"""The web server's entry point (gunicorn in `make run`, any WSGI server in a deployment).

Web server processes serve many requests at once on threads, so they take their PostgreSQL
connections from a bounded pool (DB_POOL, see settings). Only this entry point turns it on:
manage.py's processes (the worker, the indexer, runserver) keep plain connections.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsearch.settings")
os.environ.setdefault("DB_POOL", "true")
application = get_wsgi_application()
