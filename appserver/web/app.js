// The page: connection and token, thread list, the open thread, composer, approvals.
import { Rpc } from "./rpc.js";
import { ThreadView } from "./store.js";
import { approvalElement, el, fillItem, itemElement, setThreadStatus, threadEntry, threadTitle } from "./render.js";

const TOKEN_KEY = "appserver.token";
const APPROVALS = new Set(["item/commandExecution/requestApproval", "item/fileChange/requestApproval"]);
const $ = (id) => document.getElementById(id);

const state = {
  rpc: null,
  threads: new Map(), // id -> thread (from thread/list and thread/started)
  view: null, // ThreadView of the open thread
  opening: null, // thread id whose thread/resume is awaited
  requests: new Map(), // server request id -> {id, method, params, answered}
};

function showError(message) {
  $("error").textContent = message || "";
}

function setConnected(connected, label) {
  $("connection").textContent = label;
  $("new-thread").disabled = !connected;
  renderComposer();
}

// --- connecting -------------------------------------------------------------------------

async function start() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    connect(token);
  });
  $("new-thread").addEventListener("click", () => newThread().catch(report));
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send().catch(report);
  });
  $("interrupt").addEventListener("click", () => interrupt().catch(report));
  let config = { tokenRequired: false };
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) config = await response.json();
  } catch {
    // an older server: assume no token
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (config.tokenRequired && !token) {
    askToken("");
    return;
  }
  connect(config.tokenRequired ? token : null);
}

function askToken(message) {
  $("token-form").hidden = false;
  $("token-error").textContent = message;
  setConnected(false, "token required");
  $("token").focus();
}

async function connect(token) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
  setConnected(false, "connecting…");
  let rpc;
  try {
    rpc = await Rpc.open(url, token);
  } catch {
    if (token) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken("The server refused this token.");
    } else {
      setConnected(false, "could not connect");
    }
    return;
  }
  state.rpc = rpc;
  rpc.onNotification = onNotification;
  rpc.onRequest = onRequest;
  rpc.onClose = () => {
    state.rpc = null;
    setConnected(false, "disconnected");
  };
  $("token-form").hidden = true;
  await rpc.request("initialize", {
    clientInfo: { name: "appserver-web", title: "appserver web client", version: "1" },
    capabilities: { experimentalApi: false },
  });
  rpc.notify("initialized");
  setConnected(true, "connected");
  const page = await rpc.request("thread/list", { limit: 100 });
  for (const thread of page.data) state.threads.set(thread.id, thread);
  renderThreads();
}

function report(error) {
  showError(error && error.message ? error.message : String(error));
}

// --- thread list --------------------------------------------------------------------------

function renderThreads() {
  const list = $("threads");
  const threads = [...state.threads.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
  list.replaceChildren(...threads.map((thread) => threadEntry(thread, (id) => openThread(id).catch(report))));
  markOpen();
}

function markOpen() {
  for (const entry of $("threads").children) {
    const open = state.view && entry.dataset.threadId === state.view.threadId;
    entry.classList.toggle("open", Boolean(open));
    const button = entry.querySelector("button");
    if (open) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function threadEntryOf(threadId) {
  return [...$("threads").children].find((entry) => entry.dataset.threadId === threadId);
}

function updateThread(threadId, change) {
  const thread = state.threads.get(threadId);
  if (!thread) return;
  Object.assign(thread, change);
  if (state.view && state.view.threadId === threadId) $("thread-title").textContent = threadTitle(thread);
  const entry = threadEntryOf(threadId);
  if (!entry) return;
  if (change.status) setThreadStatus(entry, change.status);
  else entry.replaceWith(threadEntry(thread, (id) => openThread(id).catch(report)));
  markOpen();
}

// --- the open thread ----------------------------------------------------------------------

async function newThread() {
  const result = await state.rpc.request("thread/start", { approvalPolicy: "on-request" });
  state.threads.set(result.thread.id, result.thread);
  renderThreads();
  showThread(result.thread);
}

async function openThread(threadId) {
  state.opening = threadId;
  // Everything of this thread that arrives before the response is in the snapshot.
  const result = await state.rpc.request("thread/resume", { threadId });
  if (state.opening !== threadId) return; // another thread was opened meanwhile
  state.opening = null;
  showThread(result.thread);
}

function showThread(thread) {
  state.opening = null;
  if (!state.threads.has(thread.id)) {
    state.threads.set(thread.id, { ...thread, turns: [] });
    renderThreads();
  }
  state.view = new ThreadView(thread);
  $("thread-title").textContent = threadTitle(state.threads.get(thread.id) || thread);
  const turns = $("turns");
  turns.replaceChildren();
  for (const turn of state.view.turns) {
    const section = turnElement(turn);
    for (const itemId of turn.itemIds) section.append(itemElement(state.view.items.get(itemId).item));
    turns.append(section);
  }
  markOpen();
  renderComposer();
  renderApprovals();
}

function turnElement(turn) {
  return el("section", { class: "turn", "data-turn-id": turn.id });
}

function turnSection(turnId) {
  const turns = $("turns");
  let section = [...turns.children].find((node) => node.dataset.turnId === turnId);
  if (!section) {
    section = turnElement({ id: turnId });
    turns.append(section);
  }
  return section;
}

function itemBody(itemId) {
  return [...$("turns").querySelectorAll("[data-item-id]")].find((node) => node.dataset.itemId === itemId);
}

function showItem(turnId, entry) {
  const body = itemBody(entry.item.id);
  if (body) fillItem(body, entry.item);
  else turnSection(turnId).append(itemElement(entry.item));
  scrollToEnd();
}

function scrollToEnd() {
  const turns = $("turns");
  turns.scrollTop = turns.scrollHeight;
}

function onThreadEvent(method, params) {
  const view = state.view;
  if (!view || view.threadId !== params.threadId || state.opening === params.threadId) return;
  switch (method) {
    case "turn/started":
    case "turn/completed":
      view.addTurn(params.turn);
      turnSection(params.turn.id);
      renderComposer();
      return;
    case "item/started":
    case "item/completed": {
      const entry = view.addItem(params.turnId, params.item, method === "item/completed");
      showItem(params.turnId, entry);
      return;
    }
    default: {
      const entry = view.delta(method, params);
      if (entry) showItem(params.turnId, entry);
    }
  }
}

// --- notifications and server requests ----------------------------------------------------

function onNotification(method, params) {
  switch (method) {
    case "thread/started":
      state.threads.set(params.thread.id, params.thread);
      renderThreads();
      return;
    case "thread/status/changed":
      updateThread(params.threadId, { status: params.status });
      return;
    case "thread/name/updated":
      updateThread(params.threadId, { name: params.threadName });
      return;
    case "serverRequest/resolved":
      state.requests.delete(params.requestId);
      renderApprovals();
      return;
    default:
      if (method === "item/started" && params.item.type === "userMessage") previewFrom(params);
      if (params.threadId) onThreadEvent(method, params);
  }
}

// A thread's preview is its first user text (PROTOCOL.md §4.1): fill it in the list.
function previewFrom(params) {
  const thread = state.threads.get(params.threadId);
  const text = params.item.content.find((part) => part.type === "text");
  if (thread && !thread.preview && text) {
    updateThread(params.threadId, { preview: text.text.split("\n")[0].slice(0, 200) });
  }
}

function onRequest(id, method, params) {
  if (!APPROVALS.has(method)) return; // other requests are for other clients to answer
  if (!state.requests.has(id)) state.requests.set(id, { id, method, params, answered: false });
  renderApprovals();
}

function decide(request, decision) {
  request.answered = true;
  state.rpc.respond(request.id, { decision });
  renderApprovals();
}

function renderApprovals() {
  const open = state.view ? state.view.threadId : null;
  const cards = [...state.requests.values()]
    .filter((request) => request.params.threadId === open)
    .map((request) => {
      const card = approvalElement(request, decide);
      for (const button of card.querySelectorAll("button")) button.disabled = request.answered;
      return card;
    });
  $("approvals").replaceChildren(...cards);
}

// --- composer and interrupt ---------------------------------------------------------------

function renderComposer() {
  const ready = Boolean(state.rpc && state.view);
  $("message").disabled = !ready;
  $("send").disabled = !ready;
  const running = ready && state.view.runningTurn();
  $("interrupt").hidden = !running;
  $("interrupt").disabled = !running;
}

async function send() {
  const message = $("message");
  const text = message.value;
  if (!state.view || text === "") return;
  showError("");
  await state.rpc.request("turn/start", {
    threadId: state.view.threadId,
    input: [{ type: "text", text, text_elements: [] }],
  });
  message.value = "";
}

async function interrupt() {
  const turn = state.view && state.view.runningTurn();
  if (!turn) return;
  await state.rpc.request("turn/interrupt", { threadId: state.view.threadId, turnId: turn.id });
}

window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  report(event.reason);
});

start().catch(report);
