// The fica-rig formula on the GPU, as a Spark objectModifier (a step of the shader Spark runs to generate its
// splats, once per splat whenever the mesh's version changes):
//   mean_i = pivot + Rot(a, head_weight_i * theta) (neutral_i + sum_k w_k delta_k,slot_i - pivot),
//   quat_i = Rot(a, head_weight_i * theta) * quat_i.
// The rig's tables live in two textures uploaded once; a new expression or head pose only changes uniforms:
//   perSplat  RG32F [rows, 2048]: (head_weight_i, slot_i), slot_i the Gaussian's row in moving_index or -1;
//   deltas    RGBA16F [52 layers, rows, 2048]: layer k, texel slot -> delta_k,slot (xyz, in metres per unit weight);
//   active    vec2[52]: (w_k, layer k) of the non-zero weights, activeCount of them (the shader adds only those);
//   axisAngle vec4: (unit axis, theta) of the head rotation; pivot vec3: the neck pivot.
import * as THREE from "three";
import { dyno } from "@sparkjsdev/spark";

const WIDTH = 2048;  // texels a row: WebGL 2 guarantees textures this wide

const RIG_GLSL = `
void ficaApplyRig(int index, sampler2D perSplat, sampler2DArray deltas, vec2 terms[52], int termCount,
                  vec4 axisAngle, vec3 pivot, inout vec3 center, inout vec4 quaternion) {
  vec2 hs = texelFetch(perSplat, ivec2(index % ${WIDTH}, index / ${WIDTH}), 0).xy;
  int slot = int(hs.y);
  if (slot >= 0) {
    ivec2 cell = ivec2(slot % ${WIDTH}, slot / ${WIDTH});
    for (int n = 0; n < termCount; n++) {
      center += terms[n].x * texelFetch(deltas, ivec3(cell, int(terms[n].y)), 0).xyz;
    }
  }
  float angle = hs.x * axisAngle.w;
  if (angle != 0.0) {
    vec4 q = vec4(axisAngle.xyz * sin(0.5 * angle), cos(0.5 * angle));
    vec3 p = center - pivot;
    vec3 t = 2.0 * cross(q.xyz, p);
    center = pivot + p + q.w * t + cross(q.xyz, t);
    quaternion = vec4(q.w * quaternion.xyz + quaternion.w * q.xyz + cross(q.xyz, quaternion.xyz),
                      q.w * quaternion.w - dot(q.xyz, quaternion.xyz));
  }
}
`;

// rig: loadRig's result (headWeight Float32 [N], moving Uint32 [M], deltasHalf Uint16 [K*M*3], K layers in
// rig.manifest.expressions order). Returns {modifier (for SplatMesh's objectModifier), set(weights, names, axis,
// theta)}; set() only writes uniforms (the caller bumps the mesh's version).
export function rigModifier(rig) {
  const { headWeight, moving, deltasHalf, manifest } = rig;
  const n = headWeight.length;
  const m = moving.length;
  const layers = manifest.expressions.length;
  const layerOf = new Map(manifest.expressions.map((name, k) => [name, k]));

  const perSplat = new Float32Array(WIDTH * Math.ceil(n / WIDTH) * 2);
  for (let i = 0; i < n; i += 1) {
    perSplat[2 * i] = headWeight[i];
    perSplat[2 * i + 1] = -1;
  }
  for (let j = 0; j < m; j += 1) perSplat[2 * moving[j] + 1] = j;
  const perSplatTexture = new THREE.DataTexture(perSplat, WIDTH, perSplat.length / (2 * WIDTH), THREE.RGFormat,
    THREE.FloatType);
  perSplatTexture.needsUpdate = true;

  const rows = Math.max(1, Math.ceil(m / WIDTH));
  const texels = new Uint16Array(layers * rows * WIDTH * 4);
  for (let k = 0; k < layers; k += 1) {
    for (let j = 0; j < m; j += 1) {
      const src = 3 * (k * m + j);
      const dst = 4 * (k * rows * WIDTH + j);
      texels[dst] = deltasHalf[src];
      texels[dst + 1] = deltasHalf[src + 1];
      texels[dst + 2] = deltasHalf[src + 2];
    }
  }
  const deltaTexture = new THREE.DataArrayTexture(texels, WIDTH, rows, layers);
  deltaTexture.format = THREE.RGBAFormat;
  deltaTexture.type = THREE.HalfFloatType;
  deltaTexture.needsUpdate = true;

  const active = new Float32Array(2 * 52);
  const uniforms = {
    perSplat: new dyno.DynoSampler2D({ value: perSplatTexture }),
    deltas: new dyno.DynoSampler2DArray({ value: deltaTexture }),
    active: new dyno.DynoUniform({ type: "vec2", count: 52, value: active }),
    activeCount: new dyno.DynoInt({ value: 0 }),
    axisAngle: new dyno.DynoVec4({ value: new THREE.Vector4(0, 1, 0, 0) }),
    pivot: new dyno.DynoVec3({ value: new THREE.Vector3(...manifest.neck_pivot) }),
  };
  const modifier = dyno.dynoBlock({ gsplat: dyno.Gsplat }, { gsplat: dyno.Gsplat }, ({ gsplat }) => ({
    gsplat: new dyno.Dyno({
      inTypes: {
        gsplat: dyno.Gsplat, perSplat: "sampler2D", deltas: "sampler2DArray", active: "vec2", activeCount: "int",
        axisAngle: "vec4", pivot: "vec3",
      },
      outTypes: { gsplat: dyno.Gsplat },
      inputs: { gsplat, ...uniforms },
      globals: () => [RIG_GLSL],
      statements: ({ inputs, outputs }) => [
        `${outputs.gsplat} = ${inputs.gsplat};`,
        `if (isGsplatActive(${outputs.gsplat}.flags)) {`,
        `  ficaApplyRig(${outputs.gsplat}.index, ${inputs.perSplat}, ${inputs.deltas}, ${inputs.active},`,
        `    ${inputs.activeCount}, ${inputs.axisAngle}, ${inputs.pivot}, ${outputs.gsplat}.center,`,
        `    ${outputs.gsplat}.quaternion);`,
        "}",
      ],
    }).outputs.gsplat,
  }));

  return {
    modifier,
    // weights [52] for `names` (the viewer's order); axis [3] unit, theta radians.
    set(weights, names, axis, theta) {
      let count = 0;
      for (let k = 0; k < weights.length; k += 1) {
        const layer = layerOf.get(names[k]);
        if (weights[k] === 0 || layer === undefined) continue;
        active[2 * count] = weights[k];
        active[2 * count + 1] = layer;
        count += 1;
      }
      uniforms.activeCount.value = count;
      uniforms.axisAngle.value.set(axis[0], axis[1], axis[2], theta);
    },
    dispose() {
      perSplatTexture.dispose();
      deltaTexture.dispose();
    },
  };
}
