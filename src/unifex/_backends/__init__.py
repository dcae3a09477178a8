"""One module per kind. Nothing here imports a backend: the registry imports
each module the first time its kind is asked for (``unifex._registry``).

The package is private, as anyio's ``_backends`` is: users reach a kind through
``unifex.executor(kind)`` and list them with the public function
``unifex.backends()``, which this package's name does not shadow.
"""
