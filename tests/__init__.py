"""The celib test-suite (a package, so every conftest has its own import name)."""
