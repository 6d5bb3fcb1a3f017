// The open thread's turns and items, built from a thread/resume snapshot and then kept
// up to date by notifications. Every item is keyed by its id, so an item is shown once
// whatever arrives twice; a delta for an item that is already complete is ignored (the
// completed item carries its final text).

function isRunning(item) {
  return item.status === "inProgress";
}

export class ThreadView {
  constructor(thread) {
    this.threadId = thread.id;
    this.turns = []; // [{id, status, itemIds: []}]
    this.items = new Map(); // id -> {item, done}
    for (const turn of thread.turns || []) {
      const running = turn.status === "inProgress";
      this.addTurn(turn);
      turn.items.forEach((item, index) => {
        const last = index === turn.items.length - 1;
        // In the running turn the last item may still stream (its text so far is in the
        // snapshot); an item with a status tells it itself.
        const done = !running || (item.status !== undefined ? !isRunning(item) : !last);
        this.addItem(turn.id, item, done);
      });
    }
  }

  turn(turnId) {
    return this.turns.find((turn) => turn.id === turnId);
  }

  addTurn(turn) {
    let known = this.turn(turn.id);
    if (!known) {
      known = { id: turn.id, status: turn.status, itemIds: [] };
      this.turns.push(known);
    } else {
      known.status = turn.status;
    }
    return known;
  }

  runningTurn() {
    return this.turns.find((turn) => turn.status === "inProgress") || null;
  }

  addItem(turnId, item, done) {
    const turn = this.turn(turnId) || this.addTurn({ id: turnId, status: "inProgress" });
    const known = this.items.get(item.id);
    if (known) {
      if (known.done) return known;
      // Keep what has streamed so far if this is an item/started replayed after it.
      if (done) known.item = item;
      else known.item = { ...item, ...streamed(known.item) };
      known.done = done;
      return known;
    }
    const entry = { item, done, turnId };
    this.items.set(item.id, entry);
    turn.itemIds.push(item.id);
    return entry;
  }

  // A delta notification; returns the entry to re-render, or null when ignored.
  delta(method, params) {
    const entry = this.items.get(params.itemId);
    if (!entry || entry.done) return null;
    const item = entry.item;
    switch (method) {
      case "item/agentMessage/delta":
        item.text = (item.text || "") + params.delta;
        break;
      case "item/reasoning/summaryTextDelta":
        item.summary = appendAt(item.summary, params.summaryIndex, params.delta);
        break;
      case "item/reasoning/textDelta":
        item.content = appendAt(item.content, params.contentIndex, params.delta);
        break;
      case "item/commandExecution/outputDelta":
        item.aggregatedOutput = (item.aggregatedOutput || "") + params.delta;
        break;
      case "item/fileChange/outputDelta":
        item.output = (item.output || "") + params.delta;
        break;
      default:
        return null;
    }
    return entry;
  }
}

function streamed(item) {
  const kept = {};
  for (const key of ["text", "summary", "content", "aggregatedOutput", "output"]) {
    const value = item[key];
    if (value && (typeof value === "string" ? value : value.join(""))) kept[key] = value;
  }
  return kept;
}

function appendAt(list, index, delta) {
  const copy = Array.isArray(list) ? [...list] : [];
  const at = Number.isInteger(index) ? index : 0;
  while (copy.length <= at) copy.push("");
  copy[at] += delta;
  return copy;
}
