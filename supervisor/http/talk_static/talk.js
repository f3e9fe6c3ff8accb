// The browser's side of a callfleet WebRTC session, as Pipecat's SmallWebRTC clients do it:
// the microphone goes to the bot's worker over an RTCPeerConnection, the bot's voice plays.
// No ICE servers unless /start hands some (iceConfig): host candidates work on one machine
// and on a LAN, with nothing reached outside. The bearer key, when the supervisor has one,
// is asked for once and kept in this tab's sessionStorage (the dashboard's, shared).
"use strict";

const KEY_STORAGE = "callfleet.apiKey";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const profile = params.get("profile");
// ?session=ID: a WebRTC session already started (POST /start by an API client) that waits
// for its browser; the page offers to it directly (its id is the capability: no key needed).
const givenSession = params.get("session");
if (profile) $("profile").textContent = profile;
if (givenSession) $("profile").textContent = `session ${givenSession}`;

// What a test (or a curious person in the console) reads: the peer and the session.
window.callfleetTalk = { pc: null, sessionId: null };

function status(text) {
  $("status").textContent = text;
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE) || "";
  return key ? { Authorization: "Bearer " + key } : {};
}

async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(body),
  });
  const reply = await resp.json().catch(() => ({}));
  if (resp.status === 401) {
    $("auth").hidden = false;
    throw new Error("the supervisor needs its API key");
  }
  if (!resp.ok) throw new Error(`${path}: ${reply.info || resp.status}`);
  return reply;
}

function gathered(pc) {
  // One offer with every candidate in it, as Pipecat's clients send with waitForICEGathering.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

async function connect() {
  $("connect").disabled = true;
  status("Starting a session…");
  const started = givenSession
    ? { sessionId: givenSession, iceConfig: { iceServers: [] } }
    : await post("/start", { transport: "webrtc", ...(profile ? { profile } : {}) });
  window.callfleetTalk.sessionId = started.sessionId;
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = new RTCPeerConnection({ iceServers: (started.iceConfig || {}).iceServers || [] });
  window.callfleetTalk.pc = pc;
  pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendrecv" });
  pc.addTransceiver("video", { direction: "sendrecv" }); // Pipecat's transceiver order: audio, video
  pc.createDataChannel("chat");
  pc.addEventListener("track", (event) => {
    if (event.track.kind === "audio") $("bot-audio").srcObject = new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => status(`Session ${started.sessionId}: ${pc.connectionState}`));
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  status("Connecting…");
  const answer = await post(`/sessions/${started.sessionId}/api/offer`,
                            { sdp: pc.localDescription.sdp, type: "offer", pc_id: null, restart_pc: false });
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  $("connect").textContent = "Disconnect";
  $("connect").disabled = false;
}

function disconnect() {
  const pc = window.callfleetTalk.pc;
  if (pc) pc.close(); // the bot's worker sees its peer close: the session ends
  window.callfleetTalk.pc = null;
  $("connect").textContent = "Connect";
  status("Not connected.");
}

$("connect").addEventListener("click", () => {
  if (window.callfleetTalk.pc) {
    disconnect();
    return;
  }
  connect().catch((err) => {
    status(`Could not connect: ${err.message}`);
    $("connect").disabled = false;
  });
});

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("auth-key").value.trim());
  $("auth-key").value = "";
  $("auth").hidden = true;
  status("Key kept for this tab: connect again.");
});
