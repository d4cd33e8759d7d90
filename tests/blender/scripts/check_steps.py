"""What the check scripts share: each check runs as a ``@step(name)`` function, and a failure is
recorded in ``out`` under ``<name>_exception`` (the test shows it) instead of ending the run, so one
bpy process reports every check. Scripts run from this folder, so ``import check_steps`` finds it."""

import traceback

ADDON_PKG = "bl_ext.user_default.brushwork_blender"


def stepper(out: dict):
    def step(name: str):
        def wrap(fn):
            try:
                fn()
            except Exception as exc:
                traceback.print_exc()
                out[f"{name}_exception"] = f"{type(exc).__name__}: {exc}"
            return fn
        return wrap
    return step


def install_addon(zip_path: str) -> None:
    """Install and enable the packaged extension the way Blender's UI does."""
    import bpy

    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
