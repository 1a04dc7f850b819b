// The page's side of the asr WebSocket protocol (see asr/serve.py): capture the
// microphone at 16 kHz, stream 100 ms blocks of 16-bit PCM, show partial and final text.
"use strict";
const $ = (id) => document.getElementById(id);
let socket = null;
let context = null;
let media = null;
let capture = null;
let ending = null; // the fallback timer while the worklet flushes

function setStatus(text) {
  $("status").textContent = text;
}

function showPartial(message) {
  $("partial").querySelector(".committed").textContent = message.committed;
  $("partial").querySelector(".unstable").textContent = message.unstable;
}

function addFinal(message) {
  const line = document.createElement("p");
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = message.start.toFixed(1) + " s";
  line.append(time, document.createTextNode(message.text));
  $("committed").append(line);
  showPartial({ committed: "", unstable: "" });
}

async function connectMicrophone() {
  await context.audioWorklet.addModule("/static/worklet.js");
  const source = context.createMediaStreamSource(media);
  capture = new AudioWorkletNode(context, "pcm-capture", {
    processorOptions: { blockSize: Math.round(context.sampleRate / 10) },
  });
  capture.port.onmessage = (event) => {
    if (event.data === "flushed") {
      sendEnd();
    } else if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(event.data);
    }
  };
  const mute = context.createGain(); // keeps the graph pulling audio without playing it
  mute.gain.value = 0;
  source.connect(capture).connect(mute).connect(context.destination);
}

async function openAudio() {
  // Created before any await, inside the click, so that the browser lets it run.
  context = new AudioContext({ sampleRate: 16000 });
  media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  try {
    await connectMicrophone(); // the browser resamples the microphone to 16 kHz
  } catch (e) {
    // Some browsers cannot resample a microphone: take its own rate, the server resamples.
    await context.close();
    context = new AudioContext();
    await connectMicrophone();
  }
  await context.resume();
  if (context.state !== "running") throw new Error("audio is blocked: click Start again");
}

async function start() {
  $("start").disabled = true;
  setStatus("opening microphone…");
  try {
    await openAudio();
  } catch (e) {
    closeAudio();
    setStatus("microphone unavailable: " + e.message);
    $("start").disabled = false;
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    const hotwords = $("hotwords").value.split(",").map((w) => w.trim()).filter(Boolean);
    const config = { type: "config", sample_rate: context.sampleRate, format: "s16le" };
    // Always explicit: the box starts as the server's default, so unticking it means greedy.
    config.decoder = $("beam").checked || hotwords.length ? "beam" : "greedy";
    if (hotwords.length) config.hotwords = hotwords;
    socket.send(JSON.stringify(config));
  };
  socket.onerror = () => setStatus("cannot reach the server");
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      setStatus("listening");
      $("stop").disabled = false;
    } else if (message.type === "partial") {
      showPartial(message);
    } else if (message.type === "final") {
      addFinal(message);
    } else if (message.type === "done") {
      setStatus("done");
    } else if (message.type === "error") {
      setStatus("error: " + message.message);
    }
  };
  socket.onclose = () => {
    closeAudio();
    $("start").disabled = false;
    $("stop").disabled = true;
    if ($("status").textContent === "listening") setStatus("disconnected");
  };
}

function closeAudio() {
  if (media) media.getTracks().forEach((t) => t.stop());
  if (context) context.close();
  media = null;
  context = null;
  capture = null;
}

function sendEnd() {
  if (ending === null) return;
  clearTimeout(ending);
  ending = null;
  closeAudio();
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "end" }));
}

function stop() {
  $("stop").disabled = true;
  setStatus("finishing…");
  // The worklet sends what it still holds, then "flushed" (sendEnd); the timer is a fallback.
  ending = setTimeout(sendEnd, 500);
  if (capture) capture.port.postMessage("flush");
  else sendEnd();
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
// ?beam ticks the beam search, ?greedy unticks it, ?hotwords=a,b fills the hotwords, ?autostart starts at once.
const query = new URLSearchParams(location.search);
if (query.has("beam")) $("beam").checked = true;
if (query.has("greedy")) $("beam").checked = false;
if (query.has("hotwords")) $("hotwords").value = query.get("hotwords");
if (query.has("autostart")) start();
