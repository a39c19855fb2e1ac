// Gradio 6's Model3D draws .splat/.ply files with gsplat.js. This script, placed in the page's <head>, changes two
// things in how it draws, at the WebGL calls of the contexts that compile gsplat.js's splat shader (others are
// passed through untouched):
// 1. Full size from the first frame. Its FadeInPass grows every splat from nothing: the vertex shader scales each
//    splat's screen size by clamp((depthFade - start) / (end - start)), with depthFade rising by 0.01 a frame, so
//    the splats reach full size only ~27 frames after a load. In a slow browser that is seconds of a screen-door
//    grid over the avatar (gsplat.js depth-sorts before its first draw, so the order is never the cause). That one
//    line is dropped from the shader as it is compiled.
// 2. No redraw of an unchanged frame. gsplat.js draws a whole frame at every animation frame, moving or not, which
//    keeps the GPU busy for nothing: on a slow GPU it starves the page's other GPU work (the live viewer and its
//    webcam face tracker). A frame's clear and draw are skipped when everything it sets is what the last frame
//    drawn set (matrices and viewport to 1e-5, the depth order's buffer contents, no texture upload, same
//    canvas size); the canvas then keeps showing that frame, as WebGL canvases do when nothing draws into them.
(() => {
  const FADE = "scalingFactor = clamp((depthFade - start) / (end - start), 0.0, 1.0);";
  const gl2 = WebGL2RenderingContext.prototype;
  const original = {};
  for (const name of ["shaderSource", "clear", "viewport", "uniformMatrix4fv", "uniform2fv", "bufferData",
    "texImage2D", "texSubImage2D", "drawArraysInstanced"]) original[name] = gl2[name];
  // gsplat.js context -> what its calls since the last draw set: numbers (matrices, viewport), buffer uploads,
  // whether a texture was uploaded, the clear held back; and `last`, the same of the last frame drawn.
  const frames = new WeakMap();

  gl2.shaderSource = function (shader, source) {
    if (!source.includes(FADE)) return original.shaderSource.call(this, shader, source);
    if (!frames.has(this)) frames.set(this, { numbers: [], buffers: [], uploaded: false, clearMask: 0, last: null });
    return original.shaderSource.call(this, shader, source.replace(FADE, ""));
  };
  gl2.clear = function (mask) {
    const frame = frames.get(this);
    if (!frame) return original.clear.call(this, mask);
    frame.clearMask |= mask;  // done with the frame's draw, or dropped with it
    return undefined;
  };
  for (const name of ["viewport", "uniformMatrix4fv", "uniform2fv"]) {
    gl2[name] = function (...args) {
      const frame = frames.get(this);
      if (frame) {
        for (const arg of args) {
          if (typeof arg === "number" || typeof arg === "boolean") frame.numbers.push(Number(arg));
          else if (ArrayBuffer.isView(arg)) frame.numbers.push(...arg);
        }
      }
      return original[name].apply(this, args);
    };
  }
  gl2.bufferData = function (...args) {
    const frame = frames.get(this);
    if (frame) frame.buffers.push(ArrayBuffer.isView(args[1]) ? args[1] : args);
    return original.bufferData.apply(this, args);
  };
  for (const name of ["texImage2D", "texSubImage2D"]) {
    gl2[name] = function (...args) {
      const frame = frames.get(this);
      if (frame) frame.uploaded = true;
      return original[name].apply(this, args);
    };
  }

  function sameBytes(a, b) {
    if (a === b) return true;
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.byteLength !== b.byteLength) return false;
    const words = a.byteLength % 4 === 0 && a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0;
    const x = words ? new Uint32Array(a.buffer, a.byteOffset, a.byteLength / 4) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = words ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < x.length; i += 1) if (x[i] !== y[i]) return false;
    return true;
  }
  // Numbers within 1e-5 (relative) of each other count as the same: gsplat.js's orbit eases out by 12 % a frame,
  // so after a zoom its matrices would keep changing for hundreds of frames by amounts no pixel shows.
  const sameNumber = (x, y) => Math.abs(x - y) <= 1e-5 * Math.max(1, Math.abs(x), Math.abs(y));
  function sameFrame(a, b) {
    return a.numbers.length === b.numbers.length && a.numbers.every((v, i) => sameNumber(v, b.numbers[i]))
      && a.buffers.length === b.buffers.length && a.buffers.every((v, i) => sameBytes(v, b.buffers[i]));
  }

  gl2.drawArraysInstanced = function (mode, first, count, instances) {
    const frame = frames.get(this);
    if (!frame) return original.drawArraysInstanced.call(this, mode, first, count, instances);
    const drawn = {
      numbers: [...frame.numbers, this.drawingBufferWidth, this.drawingBufferHeight, mode, first, count, instances],
      buffers: frame.buffers,
    };
    const unchanged = !frame.uploaded && frame.last !== null && sameFrame(drawn, frame.last);
    const { clearMask } = frame;
    Object.assign(frame, { numbers: [], buffers: [], uploaded: false, clearMask: 0 });
    if (unchanged) return undefined;
    frame.last = drawn;
    if (clearMask) original.clear.call(this, clearMask);
    return original.drawArraysInstanced.call(this, mode, first, count, instances);
  };
})();
