"""Sphinx configuration of the flask_havn documentation (``make docs``)."""
from __future__ import annotations

import sys
from pathlib import Path

from pallets_sphinx_themes import ProjectLink, get_version

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "flask_havn"
copyright = "flask_havn contributors"
author = "flask_havn contributors"
release, version = get_version("flask-havn")

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.extlinks",
    "sphinx_click",
    "pallets_sphinx_themes",
    "havn_docs",
]

# -- autodoc --------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "both"

# Intersphinx would fetch inventories from the network at build time; the docs build offline.
intersphinx_mapping: dict = {}

# -- HTML -----------------------------------------------------------------
html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_context = {
    "project_links": [
        ProjectLink("Source Code", "https://github.com/flask-havn/flask-havn"),
        ProjectLink("Issue Tracker", "https://github.com/flask-havn/flask-havn/issues"),
    ]
}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
html_title = f"flask_havn Documentation ({version})"
html_show_sourcelink = False
version_banner = False
highlight_language = "default"
exclude_patterns = ["_build"]
