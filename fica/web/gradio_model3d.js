// Gradio 6's Model3D draws .splat/.ply files with gsplat.js. Its FadeInPass grows every splat from nothing:
// the vertex shader scales each splat's screen size by clamp((depthFade - start) / (end - start)), with depthFade
// rising by 0.01 a frame, so the splats reach full size only ~27 frames after a load. In a slow browser that is
// seconds of a screen-door grid over the avatar (gsplat.js depth-sorts before its first draw, so the order is
// never the cause). This script, placed in the page's <head>, drops that one line from the shader as it is
// compiled: the first frame shows the splats at full size. Other shaders are passed through untouched.
(() => {
  const FADE = "scalingFactor = clamp((depthFade - start) / (end - start), 0.0, 1.0);";
  const shaderSource = WebGL2RenderingContext.prototype.shaderSource;
  WebGL2RenderingContext.prototype.shaderSource = function (shader, source) {
    return shaderSource.call(this, shader, source.includes(FADE) ? source.replace(FADE, "") : source);
  };
})();
