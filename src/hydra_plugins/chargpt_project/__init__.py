"""Hydra plugins that make chargpt's project folder known, whatever the working directory.

The project folder is the parent of the primary config folder (`conf/`). From it:
- `experiments/NAME.yaml` is served as the config group `experiment` (Hydra maps a group to a
  sub-folder of a search-path root, and relative `file://` entries resolve against the working
  directory, so a plain search-path entry cannot do this);
- the resolver `${project_root:}` gives its absolute path (the default data folder lives there).
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

GROUP = "experiment"
SCHEME = "chargpt-experiments"


class ExperimentsConfigSource(FileConfigSource):
    """A folder of configs served as the single group `experiment`.

    Hydra's public `ConfigSource` is abstract; its file-reading implementation (YAML loading,
    `# @package` headers, listing) is `FileConfigSource`, which Hydra keeps in `_internal`.
    Subclassing it reuses that reading instead of copying it; only the paths are remapped.
    A Hydra upgrade that moves it fails at import, and tests/test_config.py composes
    `experiment=…` to catch that.
    """

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _inside(self, config_path: str) -> str | None:
        """The path inside the folder for a path under the group, None for any other path."""
        head, _, rest = config_path.strip("/").partition("/")
        return rest if head == GROUP else None

    def load_config(self, config_path: str) -> ConfigResult:
        inner = self._inside(config_path)
        if not inner:
            raise ConfigLoadError(f"Config not found : {config_path}")
        return super().load_config(inner)

    def is_group(self, config_path: str) -> bool:
        if config_path.strip("/") == "":
            return True
        inner = self._inside(config_path)
        return inner is not None and super().is_group(inner)

    def is_config(self, config_path: str) -> bool:
        inner = self._inside(config_path)
        return bool(inner) and super().is_config(inner)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path.strip("/") == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
        inner = self._inside(config_path)
        if inner is None or not super().is_group(inner):
            return []
        files: list[str] = []
        for name in os.listdir(os.path.join(self.path, inner)):
            self._list_add_result(files, f"{config_path}/{name}", name, results_filter)
        return sorted(set(files))


class ExperimentsSearchPath(SearchPathPlugin):
    """Mount `experiments/` and define `${project_root:}` when the primary configs are chargpt's."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for element in search_path.get_path():
            # The main entry is a bare path here; Hydra adds the scheme later.
            path = element.path.removeprefix("file://")
            if element.provider != "main" or "://" in path:
                continue
            conf_dir = Path(path)
            if not (conf_dir / "train.yaml").is_file():
                continue  # another application's configs
            project_root = conf_dir.parent.resolve()
            OmegaConf.register_new_resolver(
                "project_root", lambda root=str(project_root): root, replace=True
            )
            experiments = project_root / "experiments"
            if experiments.is_dir():
                search_path.append("chargpt", f"{SCHEME}://{experiments}")
