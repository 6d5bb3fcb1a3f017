// DOM for threads, items and approvals. Text is always set as text (never as HTML).

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function threadTitle(thread) {
  return thread.name || thread.preview || "(new thread)";
}

export function threadEntry(thread, onOpen) {
  const status = thread.status.type;
  return el(
    "li",
    { "data-thread-id": thread.id },
    el(
      "button",
      { type: "button", class: "thread-open", onclick: () => onOpen(thread.id) },
      el("span", { class: "thread-title", text: threadTitle(thread) }),
      el("span", { class: `thread-status s-${status}`, "data-thread-status": status, text: status }),
    ),
  );
}

export function setThreadStatus(entry, status) {
  const badge = entry.querySelector("[data-thread-status]");
  badge.setAttribute("data-thread-status", status.type);
  badge.className = `thread-status s-${status.type}`;
  const flags = status.activeFlags && status.activeFlags.length ? ` (${status.activeFlags.join(", ")})` : "";
  badge.textContent = status.type + flags;
}

const LABELS = {
  userMessage: "You",
  agentMessage: "Agent",
  reasoning: "Reasoning",
  commandExecution: "Command",
  fileChange: "File change",
};

// One item: a wrapper with its label, and the element carrying data-item-type/-id.
export function itemElement(item) {
  const body = el("div", { class: `item-body t-${item.type}`, "data-item-type": item.type, "data-item-id": item.id });
  fillItem(body, item);
  return el("div", { class: `item i-${item.type}` }, el("div", { class: "item-label", text: LABELS[item.type] || item.type }), body);
}

export function fillItem(body, item) {
  switch (item.type) {
    case "agentMessage":
      body.textContent = item.text || ""; // exactly the text so far, nothing else
      return;
    case "userMessage":
      body.textContent = (item.content || [])
        .map((part) => (part.type === "text" ? part.text : `[${part.type}]`))
        .join("\n");
      return;
    case "reasoning": {
      const summary = (item.summary || []).join("\n\n");
      const content = (item.content || []).join("\n\n");
      body.replaceChildren(el("p", { class: "reasoning", text: summary || content || "…" }));
      return;
    }
    case "commandExecution":
      body.setAttribute("data-item-status", item.status);
      body.replaceChildren(
        el(
          "div",
          { class: "command-line" },
          el("code", { class: "command", text: `$ ${item.command}` }),
          el("span", { class: `item-status st-${item.status}`, text: commandStatus(item) }),
        ),
        el("pre", { class: "output", "data-item-output": true, text: item.aggregatedOutput || "" }),
      );
      return;
    case "fileChange":
      body.setAttribute("data-item-status", item.status);
      body.replaceChildren(
        el("span", { class: `item-status st-${item.status}`, text: item.status }),
        ...(item.changes || []).map(changeElement),
      );
      if (item.output) body.append(el("pre", { class: "output", "data-item-output": true, text: item.output }));
      return;
    default:
      body.textContent = item.type;
  }
}

function commandStatus(item) {
  if (item.exitCode !== null && item.exitCode !== undefined) return `${item.status} (exit ${item.exitCode})`;
  return item.status;
}

function changeElement(change) {
  const kind = change.kind && change.kind.type ? change.kind.type : "update";
  const lines = (change.diff || "").split("\n").map((line) => {
    let cls = "diff-context";
    if (line.startsWith("+") && !line.startsWith("+++")) cls = "diff-add";
    else if (line.startsWith("-") && !line.startsWith("---")) cls = "diff-del";
    else if (line.startsWith("@@")) cls = "diff-hunk";
    return el("span", { class: cls, text: line + "\n" });
  });
  return el(
    "div",
    { class: "change" },
    el("div", { class: "change-path", text: `${kind} ${change.path}` }),
    el("pre", { class: "diff" }, ...lines),
  );
}

// An approval card: what is asked, and Approve / Decline.
export function approvalElement(request, onDecide) {
  const { method, params } = request;
  const what =
    method === "item/commandExecution/requestApproval"
      ? el("code", { class: "command", text: `$ ${params.command}` })
      : el("span", { text: "Apply the file change above?" });
  const card = el(
    "div",
    { class: "approval", role: "group", "aria-label": "Approval", "data-request-id": String(request.id) },
    el("div", { class: "approval-title", text: "Approval requested" }),
    what,
    params.reason ? el("div", { class: "reason", text: params.reason }) : null,
  );
  const buttons = el(
    "div",
    { class: "approval-buttons" },
    el("button", { type: "button", class: "approve", onclick: () => onDecide(request, "accept") }, "Approve"),
    el("button", { type: "button", class: "decline", onclick: () => onDecide(request, "decline") }, "Decline"),
  );
  card.append(buttons);
  return card;
}
