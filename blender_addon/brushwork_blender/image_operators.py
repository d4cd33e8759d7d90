"""Image Editor operators: a mask to paint, and inpainting the white part of it."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import delivery, identity, pixels, results, sdk
from .operators import JobOperator, base_recipe


def mask_name(image_name: str) -> str:
    return f"{image_name} mask"


class BRUSHWORK_OT_add_inpaint_mask(bpy.types.Operator):
    """Add a black mask for the shown image; paint white where it should be repainted"""

    bl_idname = "brushwork.add_inpaint_mask"
    bl_label = "Add Inpaint Mask"

    image: StringProperty(name="Image", description="Empty: the image shown in the Image Editor")

    def execute(self, context):
        image = pixels.target_image(self.image, context)
        if image is None:
            self.report({"ERROR"}, "Brushwork: no image to add a mask for")
            return {"CANCELLED"}
        w, h = image.size
        name = mask_name(image.name)
        mask = bpy.data.images.get(name) or bpy.data.images.new(name, w, h, alpha=False)
        mask.generated_color = (0, 0, 0, 1)
        if getattr(context.space_data, "type", "") == "IMAGE_EDITOR":
            context.space_data.image = mask
            context.space_data.ui_mode = "PAINT"
        self.report({"INFO"}, f"Brushwork: paint white on '{mask.name}' where '{image.name}' should change")
        return {"FINISHED"}


class BRUSHWORK_OT_inpaint_texture(JobOperator, bpy.types.Operator):
    """Repaint the masked region of an image (white in its mask) from the prompt"""

    bl_idname = "brushwork.inpaint_texture"
    bl_label = "Inpaint Texture"
    bl_options = {"REGISTER"}

    image: StringProperty(name="Image", description="Empty: the image shown in the Image Editor")
    mask: StringProperty(name="Mask", description="Empty: the image's '<name> mask' image")

    def execute(self, context):
        settings = context.scene.brushwork
        image = pixels.target_image(self.image, context)
        if image is not None and image.name.endswith(" mask") and not self.image:
            image = bpy.data.images.get(image.name[: -len(" mask")]) or image
        if image is None:
            return self.fail("no image to inpaint (open one in the Image Editor or pass image=)")
        mask = bpy.data.images.get(self.mask or mask_name(image.name))
        if mask is None:
            return self.fail(f"no mask for '{image.name}': run 'Add Inpaint Mask' and paint white "
                             "where it should change")
        w, h = image.size
        if tuple(mask.size) != (w, h):
            return self.fail(f"mask '{mask.name}' is {mask.size[0]}×{mask.size[1]}, image '{image.name}' is {w}×{h}")
        if w % 8 or h % 8 or w < 64 or h < 64:
            return self.fail(f"'{image.name}' is {w}×{h}: inpainting needs sides that are multiples of 8, at least 64")
        try:
            init_png = pixels.image_png(image)
            mask_png = pixels.image_png(mask, channels=1)
        except ValueError as exc:
            return self.fail(str(exc))
        try:
            recipe = base_recipe(settings, width=w, height=h, init_image=sdk.content_ref(init_png),
                                 mask=sdk.content_ref(mask_png), strength=settings.strength)
        except sdk.BrushworkError as exc:
            return self.fail(str(exc))
        # What the Recipe refers to stays in the file: the mask (painted, maybe never saved) is
        # packed and kept; the picture being repainted is kept by delivery.keep_previous.
        # The live mask stays editable (packed, kept); the exact mask this Recipe used is kept as
        # its own image (the PNG that was sent, stored like a result), found by its reference.
        keep_in_file(mask)
        used = delivery.image_for(mask_png, f"{image.name}-mask-used", "")
        used[results.INPUT_PROP] = recipe.mask
        image[results.INPUT_PROP] = recipe.init_image
        return self.submit(context, f"inpaint {image.name}", recipe, [init_png, mask_png], "inpaint",
                           [identity.target("IMAGE", image)], {"mask": identity.uid(mask)})


def keep_in_file(image) -> None:
    """Pack ``image`` (its current pixels, painted strokes included) and keep it with a fake user,
    so saving and reloading the .blend loses nothing a Recipe refers to."""
    if image.packed_file is None or image.is_dirty:
        image.pack()
    image.use_fake_user = True
    image[delivery.KEEP_PROP] = True  # repacked on save when painted again (delivery's save_pre handler)


class BRUSHWORK_OT_previous_version(bpy.types.Operator):
    """Go back to the version of an image before Brushwork repainted it (it is kept in the file)"""

    bl_idname = "brushwork.previous_version"
    bl_label = "Previous Version"

    image: StringProperty(name="Image", description="Empty: the image shown in the Image Editor")

    def execute(self, context):
        image = pixels.target_image(self.image, context)
        if image is None:
            self.report({"ERROR"}, "Brushwork: no image to go back from")
            return {"CANCELLED"}
        ident = image.get(results.PREVIOUS_PROP)
        previous = identity.find("IMAGE", ident) if ident else None
        if previous is None:
            self.report({"ERROR"}, f"Brushwork: '{image.name}' has no earlier version kept in this file")
            return {"CANCELLED"}
        image.user_remap(previous)  # moves the fake user too: set it again afterwards
        image.use_fake_user = True  # the newer version stays too: going back loses nothing
        previous.use_fake_user = True
        if getattr(context.space_data, "type", "") == "IMAGE_EDITOR":
            context.space_data.image = previous
        self.report({"INFO"}, f"Brushwork: '{previous.name}' is back where '{image.name}' was used")
        return {"FINISHED"}


CLASSES = (BRUSHWORK_OT_add_inpaint_mask, BRUSHWORK_OT_inpaint_texture, BRUSHWORK_OT_previous_version)


# Blender's own helper: registers in order, unregisters in reverse.
register, unregister = bpy.utils.register_classes_factory(CLASSES)
