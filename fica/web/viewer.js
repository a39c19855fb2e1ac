// FiCA live viewer: draws an avatar_rig.zip (fica-rig v1) with Spark and applies the rig on the GPU (rig_modifier.js):
//   mean_i = pivot + Rot(a, head_weight_i * theta) (neutral_i + sum_k w_k delta_k,i - pivot),
//   quat_i = Rot(a, head_weight_i * theta) * quat_i   (scales, opacities and colours stay).
// Controls: a slider per expression weight (the ARKit names the page passes in, grouped), head yaw/pitch/roll,
// presets, reset, webcam. Test hooks: the canvas sits in #live-viewer and window.ficaLive = {fps, weights,
// setWeights(obj), startWebcam(), ...}.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { PackedSplats, SparkRenderer, SplatMesh, utils } from "@sparkjsdev/spark";
import { GpuPacer } from "./gpu_pacer.js";
import { rigModifier } from "./rig_modifier.js";
import { startWebcam as openWebcam } from "./webcam.js";

const GROUPS = [
  ["Brows", (n) => n.startsWith("brow")],
  ["Eyes", (n) => n.startsWith("eye")],
  ["Cheeks and nose", (n) => n.startsWith("cheek") || n.startsWith("nose")],
  ["Jaw", (n) => n.startsWith("jaw")],
  ["Mouth", (n) => n.startsWith("mouth") || n === "tongueOut"],
];
const HEAD_LIMITS_DEG = { yaw: 45, pitch: 30, roll: 30 };
const WEBCAM_GPU_SHARE = 0.5;  // the most of a slow GPU's time the drawing takes while the webcam drives

// ------------------------------------------------------------------------------------------------ rig file

async function inflateRaw(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// {name: Uint8Array} of a zip's files (stored or deflated), read from its central directory.
export async function unzip(buffer) {
  const view = new DataView(buffer);
  let end = buffer.byteLength - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end -= 1;
  if (end < 0) throw new Error("not a zip file");
  const count = view.getUint16(end + 10, true);
  let p = view.getUint32(end + 16, true);
  const files = {};
  const decoder = new TextDecoder();
  for (let i = 0; i < count; i += 1) {
    const method = view.getUint16(p + 10, true);
    const size = view.getUint32(p + 20, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    const local = view.getUint32(p + 42, true);
    const name = decoder.decode(new Uint8Array(buffer, p + 46, nameLength));
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = new Uint8Array(buffer, start, size);
    files[name] = method === 0 ? raw.slice() : await inflateRaw(raw);
    p += 46 + nameLength + extraLength + commentLength;
  }
  return files;
}

// The Gaussians of a binary little-endian 3DGS .ply: means [N*3], quats [N*4] (w x y z), scales [N*3] (linear),
// opacities [N], colors [N*3] (0..1).
export function parsePly(bytes) {
  const head = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 4096)));
  const headerEnd = head.indexOf("end_header\n") + "end_header\n".length;
  const lines = head.slice(0, headerEnd).split("\n");
  const count = Number(lines.find((l) => l.startsWith("element vertex")).split(" ")[2]);
  const props = lines.filter((l) => l.startsWith("property float")).map((l) => l.split(" ")[2]);
  const stride = props.length;
  const table = new Float32Array(bytes.buffer.slice(bytes.byteOffset + headerEnd,
    bytes.byteOffset + headerEnd + count * stride * 4));
  const col = (name) => props.indexOf(name);
  const out = {
    count, means: new Float32Array(count * 3), quats: new Float32Array(count * 4),
    scales: new Float32Array(count * 3), opacities: new Float32Array(count), colors: new Float32Array(count * 3),
  };
  const C0 = 0.28209479177387814;
  const c = ["x", "y", "z", "rot_0", "rot_1", "rot_2", "rot_3", "scale_0", "scale_1", "scale_2", "opacity",
    "f_dc_0", "f_dc_1", "f_dc_2"].map(col);
  for (let i = 0; i < count; i += 1) {
    const r = i * stride;
    for (let k = 0; k < 3; k += 1) {
      out.means[3 * i + k] = table[r + c[k]];
      out.scales[3 * i + k] = Math.exp(table[r + c[7 + k]]);
      out.colors[3 * i + k] = Math.min(1, Math.max(0, table[r + c[11 + k]] * C0 + 0.5));
    }
    const q = [table[r + c[3]], table[r + c[4]], table[r + c[5]], table[r + c[6]]];
    const norm = Math.hypot(...q) || 1;
    for (let k = 0; k < 4; k += 1) out.quats[4 * i + k] = q[k] / norm;
    out.opacities[i] = 1 / (1 + Math.exp(-table[r + c[10]]));
  }
  return out;
}

// An avatar_rig.zip's contents: manifest, neutral Gaussians, moving index, deltas (float16 bits, Uint16 [K*M*3]),
// head weights.
export async function loadRig(buffer) {
  const files = await unzip(buffer);
  const manifest = JSON.parse(new TextDecoder().decode(files["manifest.json"]));
  if (manifest.format !== "fica-rig" || manifest.version !== 1) throw new Error("not a fica-rig v1 file");
  const copy = (bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return {
    manifest,
    neutral: parsePly(files["gaussians.ply"]),
    moving: new Uint32Array(copy(files["moving_index.u32"])),
    deltasHalf: new Uint16Array(copy(files["deltas.f16"])),
    headWeight: new Float32Array(copy(files["head_weight.f32"])),
  };
}

// ------------------------------------------------------------------------------------------------ rig formula

const ROTATION = { matrix: new THREE.Matrix4(), step: new THREE.Matrix4(), quaternion: new THREE.Quaternion() };

// R = Ry(yaw) Rx(pitch) Rz(roll), as fica.rotations.rotation_ypr; writes its unit axis into axis [3] and returns
// its angle (radians).
export function headAxisAngle(yawDeg, pitchDeg, rollDeg, axis) {
  const { matrix, step, quaternion: q } = ROTATION;
  matrix.makeRotationY(THREE.MathUtils.degToRad(yawDeg))
    .multiply(step.makeRotationX(THREE.MathUtils.degToRad(pitchDeg)))
    .multiply(step.makeRotationZ(THREE.MathUtils.degToRad(rollDeg)));
  q.setFromRotationMatrix(matrix);
  if (q.w < 0) q.set(-q.x, -q.y, -q.z, -q.w);
  const s = Math.sqrt(Math.max(0, 1 - q.w * q.w));
  if (s < 1e-9) {
    axis[0] = 0; axis[1] = 1; axis[2] = 0;
    return 0;
  }
  axis[0] = q.x / s; axis[1] = q.y / s; axis[2] = q.z / s;
  return 2 * Math.acos(Math.min(1, q.w));
}

// ------------------------------------------------------------------------------------------------ the viewer

const STYLE = `
.fica-live { display: flex; gap: 10px; width: 100%; font: 13px system-ui, sans-serif; color: #ddd; }
.fica-live #live-viewer { position: relative; flex: 1 1 auto; min-width: 0; height: 520px; background: #1d1e22;
  border-radius: 8px; overflow: hidden; }
.fica-live #live-viewer canvas { width: 100%; height: 100%; display: block; }
.fica-live .fica-hud { position: absolute; left: 8px; top: 6px; pointer-events: none; color: #cfd2da;
  text-shadow: 0 1px 2px #000; }
.fica-live .fica-status { position: absolute; left: 8px; bottom: 6px; right: 8px; color: #ffcf7a; }
.fica-live .fica-controls { flex: 0 0 290px; height: 520px; overflow-y: auto; background: #26272d;
  border-radius: 8px; padding: 8px; box-sizing: border-box; }
.fica-live .fica-controls button, .fica-live .fica-controls select { margin: 2px 2px 6px 0; padding: 4px 8px;
  background: #3b3d47; color: #eee; border: 1px solid #555; border-radius: 5px; cursor: pointer;
  font: 400 12px/1.3 system-ui, sans-serif; width: auto; }
.fica-live .fica-controls select { appearance: auto; }
.fica-live .fica-row { display: grid; grid-template-columns: 120px 1fr 34px; align-items: center; gap: 4px; }
.fica-live .fica-row label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-size: 12px; }
.fica-live .fica-row input { width: 100%; }
.fica-live .fica-row output { font-size: 11px; text-align: right; color: #aaa; }
.fica-live details { margin: 4px 0; }
.fica-live .fica-controls summary, .fica-live .fica-controls label {
  color: #dde0e8 !important; background: none; }
.fica-live summary { cursor: pointer; font-weight: 600; margin: 4px 0; }
`;

function element(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, attrs);
  for (const child of children) node.append(child);
  return node;
}

// Builds the viewer inside `root` and installs window.ficaLive. options: {expressions: the 52 ARKit names in
// fica.drive.expression order (the page passes them in), presets: {name: {fps, names, weights, rotation}},
// faceMeshBase: URL of the face_mesh folder (webcam off without it), landmarkModel: the regression JSON}.
export function mountViewer(root, options = {}) {
  const names = options.expressions;
  if (!names || names.length === 0) throw new Error("the viewer needs the expression names");
  const nameIndex = new Map(names.map((name, k) => [name, k]));
  const presets = options.presets || {};
  // Each preset's weight names as the viewer's indices, so a frame of a playing preset looks nothing up.
  const presetSlots = Object.fromEntries(Object.entries(presets).map(([p, clip]) => [p, clip.names.map((n) => {
    if (!nameIndex.has(n)) throw new Error(`preset ${p} uses an unknown expression ${n}`);
    return nameIndex.get(n);
  })]));
  root.replaceChildren();
  root.append(element("style", { textContent: STYLE }));
  const canvasBox = element("div", { id: "live-viewer" });
  const hud = element("div", { className: "fica-hud", textContent: "no avatar yet" });
  const status = element("div", { className: "fica-status" });
  canvasBox.append(hud, status);
  const controls = element("div", { className: "fica-controls" });
  root.append(element("div", { className: "fica-live" }, [canvasBox, controls]));

  const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.setClearColor(0x1d1e22, 1);
  canvasBox.prepend(renderer.domElement);
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(30, 1, 0.01, 20);
  camera.position.set(0, 0.02, 0.75);
  const orbit = new OrbitControls(camera, renderer.domElement);
  orbit.target.set(0, 0.02, 0);
  orbit.enableDamping = true;
  let needsDraw = true;  // something changed since the last frame drawn
  function wake() {
    needsDraw = true;
  }
  const pacer = new GpuPacer(renderer.getContext());
  const spark = new SparkRenderer({ renderer, onDirty: wake });
  scene.add(spark);

  const state = {
    rig: null, mesh: null, modifier: null, dirty: false, axis: [0, 1, 0],
    weights: new Float32Array(names.length), ypr: [0, 0, 0], preset: null, webcam: null,
    frames: 0, fps: 0, fpsStart: performance.now(), rigUpdates: 0, drawn: 0,
  };

  // --- controls
  const sliders = {};
  function slider(name, min, max, step, onInput) {
    const input = element("input", { type: "range", min, max, step, value: 0 });
    const out = element("output", { textContent: "0" });
    input.addEventListener("input", () => { out.textContent = Number(input.value).toFixed(2); onInput(Number(input.value)); });
    sliders[name] = { input, out };
    return element("div", { className: "fica-row" }, [element("label", { textContent: name, title: name }), input, out]);
  }
  const presetSelect = element("select", {}, Object.keys(presets).map((n) => element("option", { value: n, textContent: n })));
  const playButton = element("button", { textContent: "Play" });
  const resetButton = element("button", { textContent: "Reset" });
  const webcamButton = element("button", { textContent: "Webcam" });
  playButton.addEventListener("click", () => api.playPreset(presetSelect.value));
  resetButton.addEventListener("click", () => api.reset());
  webcamButton.addEventListener("click", () => api.startWebcam().catch(() => {}));
  const top = [presetSelect, playButton, resetButton];
  if (options.faceMeshBase) top.push(webcamButton);
  controls.append(element("div", {}, top));
  const head = element("details", { open: true }, [element("summary", { textContent: "Head" })]);
  for (const [i, axis] of ["yaw", "pitch", "roll"].entries()) {
    const lim = HEAD_LIMITS_DEG[axis];
    head.append(slider(axis, -lim, lim, 0.5, (v) => { stopDrivers(); state.ypr[i] = v; state.dirty = true; }));
  }
  controls.append(head);
  for (const [title, test] of GROUPS) {
    const group = element("details", { open: title === "Jaw" }, [element("summary", { textContent: title })]);
    names.forEach((name, k) => {
      if (test(name)) group.append(slider(name, 0, 1, 0.01, (v) => { stopDrivers(); state.weights[k] = v; state.dirty = true; }));
    });
    controls.append(group);
  }

  function syncSliders() {
    names.forEach((name, k) => {
      sliders[name].input.value = state.weights[k];
      sliders[name].out.textContent = state.weights[k].toFixed(2);
    });
    ["yaw", "pitch", "roll"].forEach((axis, i) => {
      sliders[axis].input.value = state.ypr[i];
      sliders[axis].out.textContent = state.ypr[i].toFixed(1);
    });
  }

  function stopDrivers() {
    state.preset = null;
  }

  // --- rig -> Spark: the neutral Gaussians are packed once; the rig runs in Spark's splat generator on the GPU.
  function install(rig) {
    const n = rig.neutral.count;
    const packed = new PackedSplats();
    const array = packed.ensureSplats(n);
    const { means, scales, quats, opacities, colors } = rig.neutral;
    for (let i = 0; i < n; i += 1) {
      utils.setPackedSplat(array, i, means[3 * i], means[3 * i + 1], means[3 * i + 2],
        scales[3 * i], scales[3 * i + 1], scales[3 * i + 2],
        quats[4 * i + 1], quats[4 * i + 2], quats[4 * i + 3], quats[4 * i],
        opacities[i], colors[3 * i], colors[3 * i + 1], colors[3 * i + 2]);
    }
    packed.numSplats = n;
    if (state.mesh) {
      scene.remove(state.mesh);
      state.mesh.dispose();
      state.modifier.dispose();
    }
    const modifier = rigModifier(rig);
    const mesh = new SplatMesh({ packedSplats: packed, objectModifier: modifier.modifier });
    scene.add(mesh);
    Object.assign(state, { rig, mesh, modifier, dirty: true });
    // Frame the head: centre of the neutral Gaussians' bounding box, distance from its height.
    const box = new THREE.Box3();
    for (let i = 0; i < n; i += 1) box.expandByPoint(new THREE.Vector3(means[3 * i], means[3 * i + 1], means[3 * i + 2]));
    const centre = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3());
    orbit.target.copy(centre);
    camera.position.set(centre.x, centre.y, centre.z + 1.25 * size.y / Math.tan(THREE.MathUtils.degToRad(15)) / 2);
    orbit.update();
    hud.textContent = `${n.toLocaleString()} Gaussians`;
    wake();
  }

  // New weights or head angles: a few uniforms change and Spark regenerates its splats on the GPU.
  function applyRig() {
    const theta = headAxisAngle(state.ypr[0], state.ypr[1], state.ypr[2], state.axis);
    state.modifier.set(state.weights, names, state.axis, theta);
    state.mesh.updateVersion();
    state.rigUpdates += 1;
  }

  // --- presets
  function presetFrame(now) {
    const p = state.preset;
    const clip = presets[p.name];
    const frame = Math.max(0, Math.floor(((now - p.start) / 1000) * clip.fps));
    if (frame >= clip.weights.length) {
      state.preset = null;
      return;
    }
    state.weights.fill(0);
    const slots = presetSlots[p.name];
    const row = clip.weights[frame];
    for (let j = 0; j < slots.length; j += 1) state.weights[slots[j]] = row[j];
    for (let i = 0; i < 3; i += 1) state.ypr[i] = clip.rotation[frame][i];
    state.dirty = true;
  }

  // --- loop
  function resize() {
    const w = canvasBox.clientWidth || 640;
    const h = canvasBox.clientHeight || 480;
    if (renderer.domElement.width !== Math.floor(w * renderer.getPixelRatio())) {
      renderer.setSize(w, h, false);
      camera.aspect = w / h;
      camera.updateProjectionMatrix();
    }
  }
  // A frame is drawn when something changed: a playing preset, new weights or pose (the webcam's included), the
  // orbit easing out, a resize, Spark's new splats or finished depth sort (its onDirty). An idle viewer draws
  // nothing. Frames are paced by the GPU (gpu_pacer.js): never one queued behind another, and while the webcam
  // drives, a slow GPU spends at most WEBCAM_GPU_SHARE of its time drawing, so the face tracker (on the same GPU)
  // keeps its pace. fps counts drawn frames over the last full second of continuous drawing, and is 0 while idle.
  orbit.addEventListener("change", wake);
  new ResizeObserver(wake).observe(canvasBox);
  renderer.setAnimationLoop((now) => {
    if (state.preset) presetFrame(now);
    if (!state.dirty && !needsDraw) {
      state.frames = 0;
      state.fps = 0;  // its corner keeps the last figure
      state.fpsStart = now;
      return;
    }
    if (!pacer.ready(now, state.webcam ? WEBCAM_GPU_SHARE : 1)) return;
    resize();
    if (state.rig && state.dirty) {
      state.dirty = false;
      applyRig();
      if (state.drawn % 10 === 0) syncSliders();
    }
    const easing = orbit.update();
    renderer.render(scene, camera);  // Spark generates this frame's splats in it (its onDirty then is this frame)
    pacer.submitted();
    needsDraw = easing;
    state.frames += 1;
    state.drawn += 1;
    const elapsed = now - state.fpsStart;
    if (elapsed >= 1000) {
      state.fps = (state.frames * 1000) / elapsed;
      state.frames = 0;
      state.fpsStart = now;
      if (state.rig) hud.textContent = `${state.rig.neutral.count.toLocaleString()} Gaussians · ${state.fps.toFixed(1)} frames/s`;
    }
  });

  const api = {
    get fps() { return state.fps; },
    get weights() { return Object.fromEntries(names.map((n, k) => [n, state.weights[k]])); },
    get rotation() { return { yaw: state.ypr[0], pitch: state.ypr[1], roll: state.ypr[2] }; },
    get gaussians() { return state.rig ? state.rig.neutral.count : 0; },
    get rigUpdates() { return state.rigUpdates; },
    get drawnFrames() { return state.drawn; },
    // The view as fica.render.Camera has it: viewmat [4][4] head frame -> OpenCV camera (x right, y down, z
    // forward), K [3][3] in drawing-buffer pixels, width, height.
    get camera() {
      const { width, height } = renderer.domElement;
      const m = camera.matrixWorldInverse.elements;  // column-major; three.js looks down -z with y up
      const flip = [1, -1, -1, 1];
      const viewmat = [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => flip[r] * m[4 * c + r]));
      const f = height / 2 / Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2);
      return { viewmat, K: [[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], width, height };
    },
    get webcamRate() { return state.webcam ? state.webcam.rate : 0; },
    get webcamFrames() { return state.webcam ? state.webcam.frames : 0; },
    get status() { return status.textContent; },
    presets: Object.keys(presets),
    setWeights(obj) {
      for (const [name, value] of Object.entries(obj)) {
        const k = nameIndex.has(name) ? nameIndex.get(name) : -1;
        if (k < 0) throw new Error(`unknown ARKit name ${name}`);
        state.weights[k] = Math.min(1, Math.max(0, Number(value)));
      }
      state.dirty = true;
      syncSliders();
    },
    setRotation({ yaw = state.ypr[0], pitch = state.ypr[1], roll = state.ypr[2] } = {}) {
      state.ypr = [yaw, pitch, roll];
      state.dirty = true;
      syncSliders();
    },
    playPreset(name) {
      if (!presets[name]) throw new Error(`unknown preset ${name}`);
      state.preset = { name, start: performance.now() };
    },
    reset() {
      state.preset = null;
      state.weights.fill(0);
      state.ypr = [0, 0, 0];
      state.dirty = true;
      syncSliders();
    },
    async loadRig(source) {
      status.textContent = "loading the avatar…";
      const buffer = source instanceof ArrayBuffer ? source : await (await fetch(source)).arrayBuffer();
      install(await loadRig(buffer));
      status.textContent = "";
    },
    async startWebcam() {
      if (!options.faceMeshBase) throw new Error("this viewer has no webcam driving");
      if (state.webcam) return;
      status.textContent = "starting the webcam… (the video stays in this browser)";
      try {
        state.webcam = await openWebcam({
          faceMeshBase: options.faceMeshBase, model: options.landmarkModel,
          onExpression(weights, ypr) {
            state.preset = null;
            state.weights.set(weights);
            state.ypr = ypr;
            state.dirty = true;
          },
        });
        status.textContent = "webcam driving: the video stays in this browser";
      } catch (err) {
        status.textContent = err.message;
        status.title = err.cause ? String(err.cause) : "";
        throw err;
      }
    },
    stopWebcam() {
      if (state.webcam) state.webcam.stop();
      state.webcam = null;
      status.textContent = "";
    },
  };
  window.ficaLive = api;
  return api;
}
