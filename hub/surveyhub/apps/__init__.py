"""The Voila apps: the list of apps (``registry``) and the logic behind each app's notebook.

The notebooks in ``notebooks/apps/`` stay thin (a few lines that build a widget from a module here), so the
logic is importable and unit-tested; the registry is the one place that names the apps, read by the hub's
"Apps" page, the JupyterLab launcher tiles and the workspace link that brings the notebooks to each server.
"""
