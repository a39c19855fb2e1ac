// Paces a WebGL canvas's drawing by its GPU. A frame is drawn only once the previous one has finished on the GPU
// (a fence, polled at each animation frame and never waited on), so frames never queue up on the GPU in front of
// the page's other GPU work: the webcam's face tracker reads its results back from the same GPU and waits for
// everything queued before it. With a share below 1, a slow frame (longer than fastMs on the GPU) is also followed
// by a rest long enough that drawing takes at most that share of the GPU's time.
export class GpuPacer {
  // gl: the canvas's WebGL 2 context.
  constructor(gl, { fastMs = 20 } = {}) {
    this.gl = gl;
    this.fastMs = fastMs;
    this.fence = null;
    this.submittedAt = 0;
    this.doneAt = 0;
    this.frameMs = 0;  // the last frame's time from submission until the GPU was seen done with it
  }

  // Whether a new frame may be drawn at time `now` (ms, performance.now()'s clock), drawing taking at most `share`
  // (0..1] of the GPU.
  ready(now, share = 1) {
    const { gl } = this;
    if (this.fence) {
      if (gl.getSyncParameter(this.fence, gl.SYNC_STATUS) !== gl.SIGNALED) return false;
      gl.deleteSync(this.fence);
      this.fence = null;
      this.doneAt = now;
      this.frameMs = now - this.submittedAt;
    }
    if (share >= 1 || this.frameMs <= this.fastMs) return true;
    return now >= this.doneAt + (this.frameMs * (1 - share)) / share;
  }

  // Call right after a frame's draw calls were issued.
  submitted() {
    const { gl } = this;
    this.fence = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
    gl.flush();
    this.submittedAt = performance.now();
  }
}
