"""Multi-view, occlusion-aware texturing baked into the artist's own UV maps.

Small steps, most of them pure numpy (testable without Blender's data):
  - ``uvraster``: which triangle and barycentrics each texel of a UV map falls on, so each texel
    gets a world position and normal;
  - ``projection``: where a view's camera sees each texel (depth test, facing, inside the frame)
    and with what weight;
  - ``blend``: several views mixed per texel by those weights;
  - ``fill``: texels no view saw filled from their neighbours (UV-space push-pull) and padding
    around UV islands so mip-maps show no black seams;
  - ``views``: cameras placed around a selection (orbit + top);
  - ``pbr``: height / normal / roughness maps derived from the baked albedo.
bpy glue: ``meshdata`` (texel rasters of an object's own UVs), ``render_passes`` (a 1-sample
Cycles Z / Normal render of a view), ``bake`` (the whole pipeline onto materials).
"""
