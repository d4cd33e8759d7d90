"""The bundled demo model: a toy that makes Brushwork work offline before any download.

Stdlib only at import (the CLI, Blender and the canvas may import this). Training lives in
``brushwork.demo.train`` (torch), the procedural data in ``brushwork.demo.dataset`` (numpy, PIL)
and ``brushwork doctor`` in ``brushwork.demo.commands``. The facts the engine needs about the
shipped weights live in ``brushwork.models.bundled`` (the engine must not reach up into this tool
package); they are re-exported here.
"""

from __future__ import annotations

from ..models.bundled import NAME, controlnet_dir, info, inpaint_dir, is_demo, native_size, weights_dir

__all__ = ["NAME", "controlnet_dir", "info", "inpaint_dir", "is_demo", "native_size", "weights_dir"]
