// Loads the live viewer's ES modules without an import map: each module's text is read, its import specifiers are
// pointed at the blob URLs of the modules it needs, and the viewer module is imported last. The same loader runs
// in the Gradio app (texts fetched from the served fica/web folder) and in the standalone avatar_viewer.html
// (texts embedded in the page), so neither needs a bundler nor a network.
(function () {
  // [name, path under fica/web/, {specifier as written in the source: name of the module it means}]
  const MODULES = [
    ["three.core", "vendor/three/three.core.min.js", {}],
    ["three", "vendor/three/three.module.min.js", { "./three.core.min.js": "three.core" }],
    ["pass", "vendor/three/Pass.js", { three: "three" }],
    ["orbit", "vendor/three/OrbitControls.js", { three: "three" }],
    ["spark", "vendor/spark/spark.module.min.js", { three: "three", "three/addons/postprocessing/Pass.js": "pass" }],
    ["rig_modifier", "rig_modifier.js", { three: "three", "@sparkjsdev/spark": "spark" }],
    ["webcam", "webcam.js", {}],
    ["gpu_pacer", "gpu_pacer.js", {}],
    ["viewer", "viewer.js", {
      three: "three", "three/addons/controls/OrbitControls.js": "orbit", "@sparkjsdev/spark": "spark",
      "./rig_modifier.js": "rig_modifier", "./webcam.js": "webcam", "./gpu_pacer.js": "gpu_pacer",
    }],
  ];

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }

  // readText(path) -> Promise<string>. Resolves to the viewer module's namespace.
  window.ficaImportViewer = async function (readText) {
    const texts = await Promise.all(MODULES.map(([, path]) => readText(path)));
    const urls = {};
    MODULES.forEach(([name, , deps], i) => {
      let text = texts[i];
      for (const [specifier, dep] of Object.entries(deps)) {
        const pattern = new RegExp(`(from\\s*|import\\s*\\(\\s*|import\\s*)(["'])${escapeRegExp(specifier)}\\2`, "g");
        text = text.replace(pattern, `$1"${urls[dep]}"`);
      }
      urls[name] = URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
    });
    return import(urls.viewer);
  };
})();
