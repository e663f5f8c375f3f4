// The page of `facerecon serve`: upload a photo (or pick a sample), follow the job, then show each face in a 3D
// view with its landmark picture, expression sliders and downloads. Talks to the JSON API of facerecon/serve/app.py.
// document.body.dataset.state is idle | running | ready | error (tests and scripts wait on it); dataset.job is the
// job's id; once ready, dataset.seconds is the time from the click to the first frame of the face, in seconds, and
// dataset.face the index of the face shown.
import { FaceViewer } from './viewer.js';

const STAGES = {
  read: 'Reading the photo',
  detect: 'Finding faces',
  estimate: 'Fitting the face model',
  albedo: 'Estimating the albedo',
  texture: 'Completing the texture',
  details: 'Estimating fine details',
  write: 'Writing the files',
};
const ORDER = Object.keys(STAGES);
const POLL_MS = 250;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let viewer = null;
let result = null;
let face = null;
let clickedAt = 0;
let maxUploadBytes = Infinity;

function setState(state) { document.body.dataset.state = state; }

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  $('progress').hidden = true;
  $('run').disabled = !$('file').files.length;
  setState('error');
}

function showProgress(status) {
  const bar = $('bar');
  let text;
  if (status.state === 'queued') {
    text = status.ahead ? `Waiting: ${status.ahead} job${status.ahead > 1 ? 's' : ''} ahead` : 'Waiting for a free worker';
    bar.removeAttribute('value');
  } else {
    const faces = Math.max(status.faces, 1);
    const step = Math.max(ORDER.indexOf(status.stage), 0);
    const stageWeight = status.faces ? (step - 2) / (ORDER.length - 2) : step / ORDER.length * 0.1;
    bar.value = status.faces ? 0.1 + 0.9 * (status.face + Math.max(stageWeight, 0)) / faces : stageWeight;
    text = STAGES[status.stage] || 'Starting';
    if (status.faces > 1) text += ` (face ${status.face + 1} of ${status.faces})`;
  }
  $('stage-text').textContent = `${text} · ${status.elapsed.toFixed(1)} s`;
}

async function submit(form) {
  $('error').hidden = true;
  $('result').hidden = true;
  $('progress').hidden = false;
  $('run').disabled = true;
  $('stage-text').textContent = 'Uploading';
  $('bar').removeAttribute('value');
  setState('running');
  clickedAt = performance.now();
  form.append('method', $('method').value);
  form.append('stages', $('stages').value);
  form.append('faces', 'all');
  let response;
  try {
    response = await fetch('/api/jobs', { method: 'POST', body: form });
  } catch (err) {
    return showError(`The server cannot be reached: ${err.message}`);
  }
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) return showError(body.error);
  document.body.dataset.job = body.job;
  return follow(body.status_url);
}

async function follow(url) {
  for (;;) {
    let status;
    try {
      const response = await fetch(url, { cache: 'no-store' });
      status = await response.json();
      if (!response.ok) return showError(status.error);
    } catch (err) {
      return showError(`Lost the server while waiting: ${err.message}`);
    }
    if (status.state === 'done') return showResult(status.result);
    if (status.state === 'failed') return showError(status.error);
    showProgress(status);
    await sleep(POLL_MS);
  }
}

function showResult(body) {
  result = body;
  const picker = $('face-picker');
  picker.replaceChildren();
  if (body.faces.length > 1) {
    for (const each of body.faces) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `Face ${each.index + 1}`;
      button.dataset.index = each.index;
      button.addEventListener('click', () => showFace(each));
      picker.append(button);
    }
  }
  if (body.skipped.length) {
    const note = document.createElement('span');
    note.textContent = `Skipped: ${body.skipped.join('; ')}`;
    picker.append(note);
  }
  $('result').hidden = false;
  return showFace(body.faces[0]);
}

async function showFace(chosen) {
  face = chosen;
  for (const button of $('face-picker').querySelectorAll('button')) {
    button.setAttribute('aria-pressed', String(Number(button.dataset.index) === chosen.index));
  }
  const files = chosen.files;
  const stem = result.image.replace(/\.[^.]*$/, '');
  link('download-glb', chosen.downloads.glb, `${stem}-${chosen.index}.glb`);
  link('download-obj', chosen.downloads.obj_zip, `${stem}-${chosen.index}-obj.zip`);
  link('download-params', chosen.downloads.params, `${stem}-${chosen.index}-params.json`);
  showPicture();
  const params = chosen.params;
  const angles = params.head_angles_deg;
  $('face-facts').textContent = angles ? `yaw ${angles.yaw.toFixed(0)}°, pitch ${angles.pitch.toFixed(0)}°` : '';
  if (!viewer) viewer = new FaceViewer($('view'));
  try {
    const names = await viewer.load({ glb: files['face.glb'], albedo: files['albedo.png'], normalMap: files['normal_map.png'] });
    buildSliders(names, viewer.weights());
  } catch (err) {
    return showError(`The 3D view could not show the face: ${err.message}`);
  }
  $('details').disabled = !viewer.hasDetails();
  $('details').checked = viewer.details && viewer.hasDetails();
  viewer.setDetails($('details').checked);
  viewer.setMode(document.querySelector('input[name="mode"]:checked').value);
  $('progress').hidden = true;
  $('run').disabled = !$('file').files.length;
  viewer.onRender = () => {
    viewer.onRender = null;
    document.body.dataset.face = String(chosen.index);
    if (document.body.dataset.state !== 'ready') {
      document.body.dataset.seconds = ((performance.now() - clickedAt) / 1000).toFixed(3);
    }
    setState('ready');
  };
  viewer.requestRender();
}

function link(id, url, filename) {
  const anchor = $(id);
  anchor.hidden = !url;
  if (url) {
    anchor.href = url;
    anchor.download = filename;
  }
}

// The chosen picture (landmarks or the fitted face drawn on the photo) around the face, or the whole photo.
function showPicture() {
  const wanted = document.querySelector('input[name="picture"]:checked').value;
  const url = face.files[wanted] || face.files['landmarks.png'] || face.files['overlay.png'];
  if (!url) return;
  const shown = face;
  const image = new Image();
  image.onload = () => { if (face === shown) drawPicture(image, shown.params); };
  image.src = url;
}

function drawPicture(image, params) {
  const canvas = $('picture');
  const width = image.naturalWidth;
  const height = image.naturalHeight;
  let [left, top, right, bottom] = [0, 0, width, height];
  if (!$('whole-photo').checked && params.box && params.image_size) {
    const scale = width / params.image_size.width;
    const [x0, y0, x1, y1] = params.box.map((v) => v * scale);
    const half = Math.max(x1 - x0, y1 - y0) * 0.85;
    const [cx, cy] = [(x0 + x1) / 2, (y0 + y1) / 2];
    [left, top] = [Math.max(0, cx - half), Math.max(0, cy - half)];
    [right, bottom] = [Math.min(width, cx + half), Math.min(height, cy + half)];
  }
  const zoom = Math.min(1, 900 / Math.max(right - left, bottom - top));
  canvas.width = Math.round((right - left) * zoom);
  canvas.height = Math.round((bottom - top) * zoom);
  canvas.getContext('2d').drawImage(image, left, top, right - left, bottom - top, 0, 0, canvas.width, canvas.height);
}

function buildSliders(names, weights) {
  const box = $('sliders');
  box.replaceChildren();
  names.forEach((name, index) => {
    const label = document.createElement('label');
    const title = document.createElement('span');
    title.textContent = name;
    const input = document.createElement('input');
    Object.assign(input, { type: 'range', min: 0, max: 1, step: 0.01, value: weights[index] });
    input.dataset.index = index;
    input.dataset.name = name;
    input.setAttribute('aria-label', name);
    const shown = document.createElement('output');
    shown.textContent = weights[index].toFixed(2);
    input.addEventListener('input', () => {
      viewer.setWeight(index, Number(input.value));
      shown.textContent = Number(input.value).toFixed(2);
    });
    label.append(title, input, shown);
    box.append(label);
  });
}

function setWeights(weights) {
  for (const input of $('sliders').querySelectorAll('input')) {
    const index = Number(input.dataset.index);
    input.value = weights[index];
    input.nextElementSibling.textContent = weights[index].toFixed(2);
    viewer.setWeight(index, weights[index]);
  }
}

function chooseFile(file) {
  if (file && file.size > maxUploadBytes) {
    $('run').disabled = true;
    return showError(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB, above this server's limit of ${(maxUploadBytes / 1e6).toFixed(0)} MB`);
  }
  $('error').hidden = true;
  $('drop-text').textContent = file ? `${file.name} (${(file.size / 1e6).toFixed(2)} MB)` : 'Choose a photo, or drop one here';
  $('run').disabled = !file;
  return null;
}

async function loadSamples() {
  const response = await fetch('/api/samples');
  if (!response.ok) return;
  const { samples } = await response.json();
  if (!samples.length) return;
  const list = $('sample-list');
  for (const sample of samples) {
    const button = document.createElement('button');
    button.type = 'button';
    button.title = sample.name;
    button.dataset.sample = sample.name;
    const image = document.createElement('img');
    Object.assign(image, { src: sample.url, alt: sample.name, loading: 'lazy' });
    button.append(image);
    button.addEventListener('click', () => {
      if (document.body.dataset.state === 'running') return;
      const form = new FormData();
      form.append('sample', sample.name);
      submit(form);
    });
    list.append(button);
  }
  $('samples').hidden = false;
}

function start() {
  $('file').addEventListener('change', () => chooseFile($('file').files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    if (event.dataTransfer.files.length) {
      $('file').files = event.dataTransfer.files;
      chooseFile($('file').files[0]);
    }
  });
  $('upload').addEventListener('submit', (event) => {
    event.preventDefault();
    const file = $('file').files[0];
    if (!file || document.body.dataset.state === 'running') return;
    const form = new FormData();
    form.append('image', file, file.name);
    submit(form);
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener('change', () => viewer && viewer.setMode(radio.value));
  }
  for (const radio of document.querySelectorAll('input[name="picture"]')) {
    radio.addEventListener('change', () => face && showPicture());
  }
  $('whole-photo').addEventListener('change', () => face && showPicture());
  $('details').addEventListener('change', () => viewer && viewer.setDetails($('details').checked));
  $('reset-view').addEventListener('click', () => viewer && viewer.frame());
  $('fitted').addEventListener('click', () => viewer && setWeights(viewer.fitted));
  $('neutral').addEventListener('click', () => viewer && setWeights(viewer.fitted.map(() => 0)));
  fetch('/api/health').then((r) => r.json()).then((health) => {
    if (health.max_upload_bytes) maxUploadBytes = health.max_upload_bytes;
  }).catch(() => {});
  loadSamples().catch(() => {});
}

start();
