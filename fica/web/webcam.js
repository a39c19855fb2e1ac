// Webcam driving in the page: MediaPipe's face mesh (the vendored @mediapipe/face_mesh) finds the landmarks, and
// the linear map of fica/web/landmark_regression.json turns them into ARKit weights and a head rotation, as
// fica.drive.landmark_regression does in Python (same features, fitted to the Python driving fit's output).
// Nothing leaves the browser: the frames go from the camera to the wasm face mesh and are dropped.

function decodeFloats(text) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

export function decodeModel(raw) {
  return {
    features: raw.features, targets: raw.targets, eyeOuter: raw.eye_outer, landmarks: raw.landmarks,
    mean: decodeFloats(raw.feature_mean), scale: decodeFloats(raw.feature_scale),
    W: decodeFloats(raw.W), bias: decodeFloats(raw.bias),
  };
}

// Same as fica.drive.landmark_regression.landmark_features: points [478][3] in pixels (z scaled like x).
export function landmarkFeatures(model, points) {
  const n = model.landmarks;
  let mx = 0; let my = 0; let mz = 0;
  for (let i = 0; i < n; i += 1) { mx += points[i][0]; my += points[i][1]; mz += points[i][2]; }
  mx /= n; my /= n; mz /= n;
  const [a, b] = model.eyeOuter;
  const dx = points[b][0] - points[a][0];
  const dy = points[b][1] - points[a][1];
  const dz = points[b][2] - points[a][2];
  const tilt = Math.atan2(dy, dx);
  const c = Math.cos(tilt);
  const s = Math.sin(tilt);
  const scale = Math.max(Math.hypot(dx, dy, dz), 1e-6);
  const f = new Float64Array(model.features);
  for (let i = 0; i < n; i += 1) {
    const x = points[i][0] - mx;
    const y = points[i][1] - my;
    f[3 * i] = (c * x + s * y) / scale;
    f[3 * i + 1] = (-s * x + c * y) / scale;
    f[3 * i + 2] = (points[i][2] - mz) / scale;
  }
  f[3 * n] = tilt;
  f[3 * n + 1] = Math.sin(tilt);
  return f;
}

// -> {weights: Float32Array(52) in 0..1, ypr: [yaw, pitch, roll] degrees}
export function expressionFromLandmarks(model, points) {
  const f = landmarkFeatures(model, points);
  const T = model.targets;
  const out = Float64Array.from(model.bias);
  for (let i = 0; i < model.features; i += 1) {
    const v = (f[i] - model.mean[i]) / model.scale[i];
    if (v === 0) continue;
    const row = i * T;
    for (let t = 0; t < T; t += 1) out[t] += v * model.W[row + t];
  }
  const weights = new Float32Array(52);
  for (let k = 0; k < 52; k += 1) weights[k] = Math.min(1, Math.max(0, out[k]));
  return { weights, ypr: [out[52], out[53], out[54]] };
}

function loadScript(src) {
  if (window.FaceMesh) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.crossOrigin = "anonymous";
    script.onload = resolve;
    script.onerror = () => reject(new Error("The face tracker could not be loaded."));
    document.head.append(script);
  });
}

// Opens the camera and calls onExpression(weights, ypr) for every tracked frame. Returns {stop(), rate} where
// rate is the tracked frames per second over the last second.
export async function startWebcam({ faceMeshBase, model, onExpression }) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser does not let the page use a camera (it needs https or localhost).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    // What the visitor can do about it; the browser's error name goes along as the error's cause (a tooltip).
    const otherwise = "drive the avatar with the sliders, a preset or an ARKit CSV";
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      throw new Error("Camera access was denied. Allow the camera for this page to drive the avatar with your "
        + "face; the video never leaves your browser.", { cause: err.name });
    }
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      throw new Error(`No camera was found. Connect one, or ${otherwise}.`, { cause: err.name });
    }
    throw new Error(`The camera could not be started (another program may be using it). Close that program and `
      + `try again, or ${otherwise}.`, { cause: err.name });
  }
  const raw = typeof model === "string" ? await (await fetch(model)).json() : model;
  const regression = decodeModel(raw);
  await loadScript(`${faceMeshBase}face_mesh.js`);
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  await video.play();
  const mesh = new window.FaceMesh({ locateFile: (file) => `${faceMeshBase}${file}` });
  mesh.setOptions({ maxNumFaces: 1, refineLandmarks: true, minDetectionConfidence: 0.5, minTrackingConfidence: 0.5 });
  const tracker = { running: true, rate: 0, count: 0, total: 0, since: performance.now() };
  mesh.onResults((results) => {
    const faces = results.multiFaceLandmarks;
    if (!faces || !faces.length) return;
    const w = video.videoWidth;
    const h = video.videoHeight;
    const points = faces[0].map((p) => [p.x * w, p.y * h, p.z * w]);
    const { weights, ypr } = expressionFromLandmarks(regression, points);
    onExpression(weights, ypr);
    tracker.count += 1;
    tracker.total += 1;
    const now = performance.now();
    if (now - tracker.since >= 1000) {
      tracker.rate = (tracker.count * 1000) / (now - tracker.since);
      tracker.count = 0;
      tracker.since = now;
    }
  });
  await mesh.initialize();
  (async () => {
    while (tracker.running) {
      if (video.readyState >= 2) await mesh.send({ image: video });
      // send() can settle without a task boundary, so give the page (timers, drawing, input) a turn each frame.
      await new Promise((r) => setTimeout(r, video.readyState >= 2 ? 0 : 20));
    }
  })();
  return {
    get rate() { return tracker.rate; },
    get frames() { return tracker.total; },
    stop() {
      tracker.running = false;
      stream.getTracks().forEach((t) => t.stop());
      mesh.close();
    },
  };
}
