"""An interactive cortex viewer for the report: WebGL, written inline, loads nothing.

nilearn's ``view_surf`` inlines plotly (1.4 MB) once per map and draws one hemisphere; this
viewer is a few kB of script shared by every map, draws both hemispheres side by side, and
keeps each mesh once. The maps' colours are computed in the page from the values, so the
family-wise threshold can be switched on and off.
"""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np

__all__ = ["cortex_viewer"]

GAP_MM = 8.0  # between the two hemispheres


def _b64(array: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def _side_by_side(meshes: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Both hemispheres in one mesh, left on the left; returns coordinates, faces and each hemi's offset."""
    coordinates, faces, offsets, start = [], [], {}, 0
    shift = 0.0
    for hemi in [h for h in ("L", "R") if h in meshes]:
        xyz = np.asarray(meshes[hemi].coordinates, float).copy()
        if hemi == "L":
            xyz[:, 0] -= xyz[:, 0].max() + GAP_MM / 2
        else:
            xyz[:, 0] -= xyz[:, 0].min() - GAP_MM / 2
        xyz[:, 0] += shift
        coordinates.append(xyz)
        faces.append(np.asarray(meshes[hemi].faces) + start)
        offsets[hemi] = start
        start += len(xyz)
    return np.vstack(coordinates), np.vstack(faces), offsets


def _outline_vertices(faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Vertices of an ROI that share a triangle with a vertex outside it."""
    corner = labels[faces]
    mixed = (corner != corner[:, :1]).any(axis=1)
    border = np.zeros(len(labels), bool)
    border[faces[mixed].ravel()] = True
    return border & (labels > 0)


def _grey(depth: np.ndarray | None, n: int) -> np.ndarray:
    """Sulcal depth as grey levels: sulci (positive) dark, gyri light."""
    if depth is None:
        return np.full(n, 200, np.uint8)
    scale = np.nanpercentile(np.abs(depth), 98) or 1.0
    return np.round(255 * (0.72 - 0.2 * np.clip(depth / scale, -1, 1))).astype(np.uint8)


def cortex_viewer(layers: dict, *, cmap: str = "RdBu_r", height_px: int = 520) -> str:
    """HTML of a WebGL viewer of per-vertex maps on both hemispheres.

    Parameters
    ----------
    layers : mapping of subject to dict
        Per subject: ``meshes`` (hemi -> Mesh), ``background`` (hemi -> sulcal depth, or None)
        and the ``maps``, ``shown`` and ``outlines`` of `searchlight_maps`.
    cmap : str
        Matplotlib colormap, symmetric around 0.

    Returns
    -------
    str
        A ``<div>`` with a canvas, its controls, the data as JSON and the script; no URL.
    """
    import matplotlib

    geometries, subjects, vmax = {}, [], 0.0
    for subject, drawn in layers.items():
        coordinates, faces, offsets = _side_by_side(drawn["meshes"])
        # a content hash (Python's hash() of bytes changes with each interpreter: PYTHONHASHSEED)
        key = hashlib.sha256(coordinates.tobytes() + faces.tobytes()).hexdigest()[:16]
        if key not in geometries:
            short = len(coordinates) < 2 ** 16  # 16-bit indices: a third less to write for fs_LR 32k
            geometries[key] = {"positions": _b64(coordinates, np.float32),
                               "faces": _b64(faces, np.uint16 if short else np.uint32), "index_bits": 16 if short else 32,
                               "n_faces": int(len(faces)), "n_vertices": int(len(coordinates))}
        n = len(coordinates)
        depth = None
        if drawn["background"] is not None:
            depth = np.zeros(n)
            for hemi, start in offsets.items():
                depth[start:start + drawn["meshes"][hemi].n_vertices] = drawn["background"][hemi]
        labels = np.zeros(n, np.int32)
        for hemi, start in offsets.items():
            for k, mask in enumerate((drawn["outlines"] or {}).get(hemi, {}).values(), start=1):
                labels[start + np.flatnonzero(mask)] = k
        maps = []
        for pair, per_hemi in drawn["maps"].items():
            values = np.full(n, np.nan, np.float32)
            shown = np.zeros(n, np.uint8)
            for hemi, start in offsets.items():
                size = drawn["meshes"][hemi].n_vertices
                values[start:start + size] = per_hemi.get(hemi, np.full(size, np.nan))
                if drawn["shown"] is not None:
                    shown[start:start + size] = drawn["shown"][pair].get(hemi, np.zeros(size, bool))
            if np.isfinite(values).any():
                vmax = max(vmax, float(np.nanmax(np.abs(values))))
            maps.append({"name": f"{subject} · {pair}", "values": _b64(values, np.float32),
                         "shown": _b64(shown, np.uint8) if drawn["shown"] is not None else None})
        subjects.append({"geometry": key, "grey": _b64(_grey(depth, n), np.uint8),
                         "outline": _b64(_outline_vertices(faces, labels), np.uint8), "maps": maps})
    lut = np.round(255 * matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3]).astype(np.uint8)
    data = {"geometries": geometries, "subjects": subjects, "vmax": vmax or 1.0, "lut": _b64(lut, np.uint8)}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    # without permutation maps there is no threshold to apply: the box is off and says why
    thresholded = any(m["shown"] is not None for subject in subjects for m in subject["maps"])
    threshold_box = ('<input type="checkbox" id="bp-threshold" checked> only family-wise p &lt; .05' if thresholded else
                     '<input type="checkbox" id="bp-threshold" disabled> only family-wise p &lt; .05 '
                     '(no permutation maps: [searchlight] n_perm = 0)')
    gradient = ",".join(f"rgb({r},{g},{b})" for r, g, b in lut[::16])
    return f"""<div class="bp-viewer">
<div class="bp-controls"><label>map <select id="bp-map"></select></label>
<label>{threshold_box}</label>
<span>view: <button data-view="posterior">posterior</button> <button data-view="dorsal">dorsal</button>
<button data-view="ventral">ventral</button> <button data-view="left">left</button>
<button data-view="right">right</button></span></div>
<canvas id="bp-canvas" style="width:100%;height:{height_px}px;background:#fff;border:1px solid #ddd"></canvas>
<div class="bp-legend" style="font-size:.8em"><span>-{data['vmax']:.2f}</span>
<span style="display:inline-block;width:200px;height:10px;vertical-align:middle;background:linear-gradient(to right,{gradient})"></span>
<span>{data['vmax']:.2f}</span> RDM similarity <span id="bp-status"></span></div>
<script type="application/json" id="bp-viewer-data">{payload}</script>
<script>{VIEWER_SCRIPT}</script></div>"""


VIEWER_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("bp-viewer-data").textContent);
  const canvas = document.getElementById("bp-canvas");
  const status = document.getElementById("bp-status");
  const decode = (text, Type) => {
    const bytes = Uint8Array.from(atob(text), c => c.charCodeAt(0));
    return new Type(bytes.buffer);
  };
  let gl = canvas.getContext("webgl2");
  let ext = null;
  if (!gl) {
    gl = canvas.getContext("webgl");
    ext = gl && gl.getExtension("OES_element_index_uint");
  }
  if (!gl) { status.textContent = "(this browser has no WebGL: see the static Fig. 4)"; return; }
  const lut = decode(data.lut, Uint8Array);
  const shader = (type, source) => {
    const s = gl.createShader(type); gl.shaderSource(s, source); gl.compileShader(s); return s;
  };
  const program = gl.createProgram();
  gl.attachShader(program, shader(gl.VERTEX_SHADER, `
    attribute vec3 position; attribute vec3 normal; attribute vec3 color;
    uniform mat3 rotation; uniform vec3 center; uniform float scale; uniform float aspect;
    varying vec3 shade;
    void main() {
      vec3 p = rotation * ((position - center) * scale);
      vec3 n = normalize(rotation * normal);
      float light = 0.45 + 0.55 * abs(n.z);
      shade = color * light;
      gl_Position = vec4(p.x / aspect, p.y, -p.z * 0.5, 1.0);
    }`));
  gl.attachShader(program, shader(gl.FRAGMENT_SHADER, `
    precision mediump float; varying vec3 shade;
    void main() { gl_FragColor = vec4(shade, 1.0); }`));
  gl.linkProgram(program);
  gl.useProgram(program);
  const where = name => gl.getAttribLocation(program, name);
  const uniform = name => gl.getUniformLocation(program, name);
  const geometries = {};
  for (const [key, g] of Object.entries(data.geometries)) {
    const positions = decode(g.positions, Float32Array);
    const faces = decode(g.faces, g.index_bits === 16 ? Uint16Array : Uint32Array);
    const normals = new Float32Array(positions.length);
    for (let f = 0; f < faces.length; f += 3) {
      const a = faces[f] * 3, b = faces[f + 1] * 3, c = faces[f + 2] * 3;
      const ux = positions[b] - positions[a], uy = positions[b + 1] - positions[a + 1], uz = positions[b + 2] - positions[a + 2];
      const vx = positions[c] - positions[a], vy = positions[c + 1] - positions[a + 1], vz = positions[c + 2] - positions[a + 2];
      const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      for (const v of [a, b, c]) { normals[v] += nx; normals[v + 1] += ny; normals[v + 2] += nz; }
    }
    const low = [Infinity, Infinity, Infinity], high = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < positions.length; i++) {
      low[i % 3] = Math.min(low[i % 3], positions[i]); high[i % 3] = Math.max(high[i % 3], positions[i]);
    }
    const center = low.map((l, i) => (l + high[i]) / 2);
    const radius = Math.max(...high.map((h, i) => h - low[i])) / 2;
    const buffer = array => { const b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b); gl.bufferData(gl.ARRAY_BUFFER, array, gl.STATIC_DRAW); return b; };
    const index = gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, index);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, faces, gl.STATIC_DRAW);
    geometries[key] = {position: buffer(positions), normal: buffer(normals), index, count: faces.length,
                       n: g.n_vertices, center, scale: 0.95 / radius, color: gl.createBuffer(),
                       type: g.index_bits === 16 ? gl.UNSIGNED_SHORT : gl.UNSIGNED_INT};
  }
  const maps = [];
  data.subjects.forEach(subject => subject.maps.forEach(m => maps.push({subject, map: m})));
  const select = document.getElementById("bp-map");
  maps.forEach((entry, i) => { const o = document.createElement("option"); o.value = i; o.textContent = entry.map.name; select.appendChild(o); });
  const threshold = document.getElementById("bp-threshold");
  let yaw = 0, pitch = 0, zoom = 1, current = null;
  const views = {posterior: [0, 0], anterior: [Math.PI, 0], dorsal: [0, Math.PI / 2], ventral: [0, -Math.PI / 2],
                 left: [Math.PI / 2, 0], right: [-Math.PI / 2, 0]};
  function colours() {
    const entry = maps[select.value];
    const geometry = geometries[entry.subject.geometry];
    const grey = decode(entry.subject.grey, Uint8Array), outline = decode(entry.subject.outline, Uint8Array);
    const values = decode(entry.map.values, Float32Array);
    const shown = entry.map.shown ? decode(entry.map.shown, Uint8Array) : null;
    threshold.disabled = !shown;
    const colour = new Float32Array(geometry.n * 3);
    let drawn = 0;
    for (let i = 0; i < geometry.n; i++) {
      let r = grey[i], g = grey[i], b = grey[i];
      const v = values[i];
      if (!Number.isNaN(v) && (!threshold.checked || !shown || shown[i])) {
        const k = Math.max(0, Math.min(255, Math.round((v / data.vmax + 1) * 127.5)));
        r = lut[3 * k]; g = lut[3 * k + 1]; b = lut[3 * k + 2]; drawn++;
      }
      if (outline[i]) { r = g = b = 0; }
      colour[3 * i] = r / 255; colour[3 * i + 1] = g / 255; colour[3 * i + 2] = b / 255;
    }
    gl.bindBuffer(gl.ARRAY_BUFFER, geometry.color);
    gl.bufferData(gl.ARRAY_BUFFER, colour, gl.STATIC_DRAW);
    current = geometry;
    status.textContent = `(${drawn} vertices coloured${!shown ? "; no permutation maps: no threshold" :
      threshold.checked ? "; untick the box to see every value" : ""})`;
    draw();
  }
  function rotation() {
    // brain RAS -> screen for the posterior view (x right, z up, y into the screen), then yaw and pitch
    const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    const base = [[1, 0, 0], [0, 0, 1], [0, -1, 0]];
    const ry = [[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]];
    const rx = [[1, 0, 0], [0, cp, -sp], [0, sp, cp]];
    const mul = (a, b) => a.map((row, i) => b[0].map((_, j) => row.reduce((s, _, k) => s + a[i][k] * b[k][j], 0)));
    const m = mul(rx, mul(ry, base));
    return new Float32Array([m[0][0], m[1][0], m[2][0], m[0][1], m[1][1], m[2][1], m[0][2], m[1][2], m[2][2]]);
  }
  function draw() {
    if (!current) return;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = canvas.clientWidth * ratio; canvas.height = canvas.clientHeight * ratio;
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(1, 1, 1, 1); gl.enable(gl.DEPTH_TEST);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    for (const [name, buffer] of [["position", current.position], ["normal", current.normal], ["color", current.color]]) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(where(name));
      gl.vertexAttribPointer(where(name), 3, gl.FLOAT, false, 0, 0);
    }
    gl.uniformMatrix3fv(uniform("rotation"), false, rotation());
    gl.uniform3fv(uniform("center"), current.center);
    gl.uniform1f(uniform("scale"), current.scale * zoom);
    gl.uniform1f(uniform("aspect"), canvas.width / canvas.height);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, current.index);
    gl.drawElements(gl.TRIANGLES, current.count, current.type, 0);
  }
  let dragging = null;
  canvas.addEventListener("mousedown", e => { dragging = [e.clientX, e.clientY]; });
  window.addEventListener("mouseup", () => { dragging = null; });
  window.addEventListener("mousemove", e => {
    if (!dragging) return;
    yaw += (e.clientX - dragging[0]) * 0.01; pitch += (e.clientY - dragging[1]) * 0.01;
    dragging = [e.clientX, e.clientY]; draw();
  });
  canvas.addEventListener("wheel", e => { e.preventDefault(); zoom *= Math.exp(-e.deltaY * 0.001); draw(); }, {passive: false});
  document.querySelectorAll(".bp-viewer button[data-view]").forEach(button => button.addEventListener("click", () => {
    [yaw, pitch] = views[button.dataset.view]; draw();
  }));
  select.addEventListener("change", colours);
  threshold.addEventListener("change", colours);
  window.addEventListener("resize", draw);
  colours();
})();
"""
