"""Jupyter Notebook 7 server for the browser test of the panel in Notebook 7 (never use for real work).

Same relaxations as Galata's (temporary root folder, no token, no XSRF check), on its own port:
``LLMOPS_NB7_PORT``, default ``LLMOPS_UI_PORT`` + 1 (playwright.config.js computes the same).
"""
import atexit
import os
import shutil
from tempfile import mkdtemp

c = get_config()  # noqa: F821  (provided by Jupyter when it loads this file)

ROOT = mkdtemp(prefix="llmops-nb7-test-")
c.ServerApp.port = int(os.environ.get("LLMOPS_NB7_PORT") or int(os.environ.get("LLMOPS_UI_PORT", "8899")) + 1)
c.ServerApp.port_retries = 0
c.ServerApp.open_browser = False
c.ServerApp.root_dir = ROOT
c.ServerApp.allow_root = True
c.ServerApp.password = ""
c.ServerApp.disable_check_xsrf = True
c.IdentityProvider.token = ""
c.JupyterNotebookApp.expose_app_in_browser = True

# The llmops server extension stops what it started (MLflow UI, job runs) at exit; then the root goes.
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)
