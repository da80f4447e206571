"""Settings: what a user can set, read from the environment and the command line, checked at load.

- ``model.py``: the :class:`Settings` model and its ``setting()`` field helper; checks of one field;
- ``values.py``: value types: durations (``30s``, ``5m``) and comma lists;
- ``env.py``: the environment source: ``WATCHKEEPER_*``, Watchtower aliases, ``*_FILE`` secrets,
  and which variable set each value;
- ``load.py``: :func:`load_settings` and the checks across fields, errors naming the variable.

To add a setting: a field in ``model.py`` (its default, description and aliases), a check in
``load.py`` if it depends on other settings, then ``scripts/settings_table.py --write`` and
``scripts/env_example.py --write`` for the README table and ``.env.example``.
"""

from watchkeeper.settings.load import load_settings
from watchkeeper.settings.model import Settings

__all__ = ["Settings", "load_settings"]
