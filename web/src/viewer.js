// The 3D view of a reconstructed face: a GLB (metres, y up, face along +z) with its 53 ARKit morph targets,
// shown textured, with the de-lit albedo, or as plain geometry, optionally with the object-space normal map
// of the details stage. Renders on demand (orbit, zoom, slider, mode), not every frame.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

const GREY = 0xc9c5c0;

function imageTexture(loader, url, colorSpace) {
  if (!url) return Promise.resolve(null);
  return loader.loadAsync(url).then((texture) => {
    texture.flipY = false; // the GLB's UVs: glTF's top-left origin
    texture.colorSpace = colorSpace;
    texture.anisotropy = 4;
    return texture;
  });
}

export class FaceViewer {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x20242b);
    this.camera = new THREE.PerspectiveCamera(28, 4 / 3, 0.01, 20);
    this.scene.add(this.camera);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x3a3f47, 1.6));
    const key = new THREE.DirectionalLight(0xffffff, 1.8);
    key.position.set(0.6, 0.5, 1.0); // follows the camera: the face is lit from the viewer's upper right
    this.camera.add(key);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.enableDamping = true;
    this.controls.addEventListener('change', () => this.requestRender());
    this.mesh = null;
    this.materials = null;
    this.normalMap = null;
    this.mode = 'texture';
    this.details = false;
    this.home = null;
    this.needsRender = true;
    this.onRender = null;
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    const loop = () => {
      if (this.controls.update() || this.needsRender) {
        this.needsRender = false;
        this.renderer.render(this.scene, this.camera);
        if (this.onRender) this.onRender();
      }
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  requestRender() { this.needsRender = true; }

  resize() {
    const width = this.canvas.clientWidth || 640;
    const height = this.canvas.clientHeight || 480;
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.requestRender();
  }

  // Loads a face: `urls` = {glb, albedo, normalMap} (the last two may be missing). Resolves once it is shown.
  async load(urls) {
    const textures = new THREE.TextureLoader();
    const [gltf, albedo, normalMap] = await Promise.all([
      new GLTFLoader().loadAsync(urls.glb),
      imageTexture(textures, urls.albedo, THREE.SRGBColorSpace),
      imageTexture(textures, urls.normalMap, THREE.NoColorSpace),
    ]);
    let mesh = null;
    gltf.scene.traverse((node) => { if (!mesh && node.isMesh) mesh = node; });
    if (!mesh || !mesh.morphTargetDictionary) throw new Error('the GLB holds no mesh with morph targets');
    this.clear();
    const photoTexture = mesh.material.map || null;
    const base = { roughness: 0.75, metalness: 0.0 };
    this.materials = {
      texture: new THREE.MeshStandardMaterial({ ...base, map: photoTexture, color: photoTexture ? 0xffffff : GREY }),
      albedo: new THREE.MeshStandardMaterial({ ...base, map: albedo, color: albedo ? 0xffffff : GREY }),
      geometry: new THREE.MeshStandardMaterial({ ...base, color: GREY, roughness: 0.55 }),
    };
    mesh.material.dispose();
    this.normalMap = normalMap;
    this.mesh = mesh;
    this.fitted = Array.from(mesh.morphTargetInfluences);
    this.scene.add(gltf.scene);
    this.root = gltf.scene;
    this.applyMaterial();
    this.frame();
    return this.expressionNames();
  }

  clear() {
    if (!this.root) return;
    this.scene.remove(this.root);
    this.root.traverse((node) => { if (node.isMesh) node.geometry.dispose(); });
    for (const material of Object.values(this.materials || {})) {
      if (material.map) material.map.dispose();
      material.dispose();
    }
    if (this.normalMap) this.normalMap.dispose();
    this.root = this.mesh = this.materials = this.normalMap = null;
  }

  // The morph targets' names in the mesh's order.
  expressionNames() {
    const names = [];
    for (const [name, index] of Object.entries(this.mesh.morphTargetDictionary)) names[index] = name;
    return names;
  }

  // Looks at the face from the front, the whole head in view.
  frame() {
    const box = new THREE.Box3().setFromObject(this.root);
    const sphere = box.getBoundingSphere(new THREE.Sphere());
    const distance = sphere.radius / Math.sin(THREE.MathUtils.degToRad(this.camera.fov / 2)) * 0.85;
    this.controls.target.copy(sphere.center);
    this.camera.position.copy(sphere.center).add(new THREE.Vector3(0, 0, distance));
    this.camera.near = distance / 50;
    this.camera.far = distance * 50;
    this.camera.updateProjectionMatrix();
    this.controls.update();
    this.requestRender();
  }

  setMode(mode) {
    this.mode = mode;
    this.applyMaterial();
  }

  setDetails(on) {
    this.details = on;
    this.applyMaterial();
  }

  hasDetails() { return this.normalMap !== null; }

  applyMaterial() {
    if (!this.mesh) return;
    const material = this.materials[this.mode];
    for (const each of Object.values(this.materials)) {
      each.normalMap = this.details ? this.normalMap : null;
      each.normalMapType = THREE.ObjectSpaceNormalMap;
      each.needsUpdate = true;
    }
    this.mesh.material = material;
    this.requestRender();
  }

  setWeight(index, weight) {
    this.mesh.morphTargetInfluences[index] = weight;
    this.requestRender();
  }

  weights() { return Array.from(this.mesh.morphTargetInfluences); }
}
