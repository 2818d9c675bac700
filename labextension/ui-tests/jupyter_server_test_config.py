"""Jupyter server for the Galata browser tests (never use this configuration for real work).

Galata's helper gives the server a temporary root folder, no token and no XSRF check; each test then
works in its own sub-folder (`tmpPath`), so every notebook gets a fresh llmops store next to it.
"""
import os

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # noqa: F821  (provided by Jupyter when it loads this file)
configure_jupyter_server(c)

c.ServerApp.port = int(os.environ.get("LLMOPS_UI_PORT", "8899"))  # playwright.config.js reads the same variable
c.ServerApp.allow_root = True
c.IdentityProvider.token = ""
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"

