"""One module or package per kind. Nothing here imports a backend: the
registry imports each one the first time its kind is asked for.

``unifex/__init__.py`` imports this package before it binds the public
function :func:`unifex.backends`, so importing a backend later never rebinds
that name to this package.
"""
