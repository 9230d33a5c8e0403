// The Whispr web chat of the local run. REST (/messaging/api/v1) for lists, history and
// scheduling; the Phoenix socket (official `phoenix` client, shipped in shared/web/vendor) for
// everything live: messages, typing, read ticks, reactions, edits, deletes, presence.
// Reconnect catch-up: the conversation channel's join params are a function, so every rejoin
// sends the last seq this page has and the relay replays what was missed, in order.
"use strict";

const API = "/messaging/api/v1";
const CHAT = "/messaging/chat";
const EMOJIS = ["👍", "❤️", "😂"];
const STATUS_RANK = { sent: 0, delivered: 1, read: 2 };

const $ = (selector) => document.querySelector(selector);
const state = {
  me: null, // {user_id, name, token}
  socket: null,
  userChannel: null,
  conversations: new Map(), // id -> conversation object
  names: new Map(), // user id -> name
  open: null, // {id, channel, presence, messages: Map(id -> message), lastSeq, reactions: Map(id -> [reaction])}
  editing: null, // message id
  typingSent: false,
  typingTimer: null,
  typingShown: new Map(), // user id -> timer
};

// -- REST ------------------------------------------------------------------------------------

async function api(method, path, body) {
  const response = await fetch(API + path, {
    method,
    headers: { Authorization: `Bearer ${state.me.token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const json = await response.json();
  if (!response.ok) throw new Error(`${json.code}: ${json.error}`);
  return json;
}

async function chatPost(path, body) {
  const response = await fetch(CHAT + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(json.error);
  return json;
}

async function refreshNames() {
  const response = await fetch(CHAT + "/users");
  for (const user of await response.json()) state.names.set(user.user_id, user.name);
}

const nameOf = (userId) => (userId === state.me.user_id ? "you" : state.names.get(userId) || userId.slice(0, 8));

// -- sign in ---------------------------------------------------------------------------------

async function signIn(name) {
  state.me = await chatPost("/session", { name });
  sessionStorage.setItem("whispr-chat-name", name);
  await refreshNames();
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#me-name").textContent = state.me.name;
  $("#me-id").textContent = state.me.user_id.slice(0, 8);
  connect();
  await loadConversations();
}

function connect() {
  const socket = new Phoenix.Socket("/messaging/socket", {
    params: { token: state.me.token, user_id: state.me.user_id },
    reconnectAfterMs: (tries) => [100, 250, 500, 1000][tries - 1] || 2000,
    rejoinAfterMs: (tries) => [100, 500, 1000][tries - 1] || 2000,
  });
  socket.onOpen(() => setConnection("online"));
  socket.onClose(() => setConnection("offline"));
  socket.onError(() => setConnection("offline"));
  socket.connect();
  state.socket = socket;

  const channel = socket.channel(`user:${state.me.user_id}`, {});
  channel.on("conversation_summaries", ({ summaries }) => {
    for (const conversation of summaries) state.conversations.set(conversation.id, conversation);
    renderConversations();
  });
  channel.on("new_message", ({ message }) => onUserTopicMessage(message));
  channel.on("delivery_status", (event) => applyStatus(event.conversation_id, event.up_to_seq, event.status));
  channel.on("message_unread", (event) => {
    if (state.open && event.conversation_id === state.open.id && event.user_id !== state.me.user_id) {
      applyStatus(event.conversation_id, event.last_read_seq, "delivered", true);
    }
  });
  for (const event of ["conversation_created", "conversation_updated", "conversation_deleted", "member_added",
    "member_removed", "conversation_archived", "conversation_pinned"]) {
    channel.on(event, () => loadConversations());
  }
  channel.join();
  state.userChannel = channel;
}

function setConnection(which) {
  const badge = $("#connection");
  badge.dataset.state = which;
  badge.textContent = which === "online" ? "online" : "offline · reconnecting…";
}

// -- conversations ---------------------------------------------------------------------------

async function loadConversations() {
  const { data } = await api("GET", "/conversations");
  state.conversations = new Map(data.map((conversation) => [conversation.id, conversation]));
  const unknown = data.flatMap((c) => c.member_user_ids).some((id) => !state.names.has(id));
  if (unknown) await refreshNames();
  renderConversations();
}

function titleOf(conversation) {
  if (conversation.type === "group") return conversation.name || "Group";
  const other = conversation.member_user_ids.find((id) => id !== state.me.user_id);
  return other ? nameOf(other) : "Just you";
}

function renderConversations() {
  const list = $("#conversations");
  list.replaceChildren();
  const sorted = [...state.conversations.values()].sort((a, b) =>
    (b.last_message?.sent_at || b.updated_at).localeCompare(a.last_message?.sent_at || a.updated_at));
  for (const conversation of sorted) {
    const item = document.createElement("li");
    item.dataset.id = conversation.id;
    item.classList.toggle("active", state.open?.id === conversation.id);
    const button = document.createElement("button");
    button.type = "button";
    const text = document.createElement("span");
    const title = document.createElement("strong");
    title.className = "title";
    title.textContent = titleOf(conversation);
    const preview = document.createElement("span");
    preview.className = "preview";
    preview.textContent = conversation.last_message?.is_deleted ? "message deleted" : conversation.last_message?.content || "";
    text.append(title, preview);
    button.append(text);
    if (conversation.unread_count > 0 && state.open?.id !== conversation.id) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = conversation.unread_count;
      button.append(badge);
    }
    button.addEventListener("click", () => openConversation(conversation.id));
    item.append(button);
    list.append(item);
  }
}

function onUserTopicMessage(message) {
  const conversation = state.conversations.get(message.conversation_id);
  if (!conversation) {
    loadConversations();
    return;
  }
  conversation.last_message = message;
  if (state.open?.id !== message.conversation_id && message.sender_id !== state.me.user_id) {
    conversation.unread_count += 1;
  }
  renderConversations();
}

async function startConversation(names, groupName) {
  const ids = [];
  for (const name of names) ids.push((await chatPost("/users", { name })).user_id);
  await refreshNames();
  const body = groupName || ids.length > 1
    ? { type: "group", name: groupName || names.join(", "), user_ids: ids }
    : { type: "direct", other_user_id: ids[0] };
  const { data } = await api("POST", "/conversations", body);
  state.conversations.set(data.id, data);
  await openConversation(data.id);
}

// -- one conversation ------------------------------------------------------------------------

async function openConversation(id) {
  if (state.open) state.open.channel.leave();
  stopEditing();
  const open = { id, channel: null, presence: null, messages: new Map(), lastSeq: 0, reactions: new Map() };
  state.open = open;
  const conversation = state.conversations.get(id);
  $("#conversation-title").textContent = conversation ? titleOf(conversation) : "…";
  $("#composer").hidden = true; // shown once the channel is joined
  $("#messages").replaceChildren();
  $("#typing").hidden = true;
  if (conversation) conversation.unread_count = 0;
  renderConversations();

  const { data } = await api("GET", `/conversations/${id}/messages?limit=50`);
  if (state.open !== open) return;
  for (const message of data.reverse()) addMessage(message);
  await Promise.all(data.map((message) => loadReactions(message.id)));

  const channel = state.socket.channel(`conversation:${id}`, () => ({ last_seq: open.lastSeq }));
  open.channel = channel;
  channel.on("new_message", ({ message }) => {
    addMessage(message);
    if (message.sender_id !== state.me.user_id) {
      markRead();
      clearTyping(message.sender_id);
    }
  });
  channel.on("message_updated", ({ message }) => addMessage(message));
  channel.on("message_deleted", (event) => {
    const message = open.messages.get(event.message_id);
    if (!message) return;
    if (event.delete_for_everyone) addMessage({ ...message, is_deleted: true, content: "" });
    else removeMessage(event.message_id);
  });
  channel.on("message_expired", (event) => removeMessage(event.message_id));
  channel.on("user_typing", ({ user_id, typing }) => showTyping(user_id, typing));
  channel.on("conversation_read", (event) => {
    if (event.user_id !== state.me.user_id) applyStatus(id, event.up_to_seq, "read");
  });
  channel.on("reaction_added", (event) => {
    const list = (open.reactions.get(event.message_id) || []).filter((r) => r.id !== event.reaction.id);
    open.reactions.set(event.message_id, [...list, event.reaction]);
    renderMessage(event.message_id);
  });
  channel.on("reaction_removed", (event) => {
    const list = open.reactions.get(event.message_id) || [];
    open.reactions.set(event.message_id,
      list.filter((r) => !(r.user_id === event.user_id && r.reaction === event.reaction)));
    renderMessage(event.message_id);
  });
  open.presence = new Phoenix.Presence(channel);
  open.presence.onSync(() => renderPresence(open));
  channel.join()
    .receive("ok", (reply) => {
      if (state.open === open) $("#composer").hidden = false;
      if (reply.catch_up === "use_rest") catchUpOverRest(open);
      markRead();
    })
    .receive("error", (reply) => alert(`cannot join: ${reply.reason}`));
  await loadScheduled();
}

async function catchUpOverRest(open) {
  // More was missed than the relay replays: page forward through REST history.
  for (;;) {
    const { data, meta } = await api("GET", `/conversations/${open.id}/messages?after_seq=${open.lastSeq}&limit=100`);
    for (const message of data.reverse()) addMessage(message);
    if (!meta.has_more) return;
  }
}

async function loadReactions(messageId) {
  const { data } = await api("GET", `/messages/${messageId}/reactions`);
  state.open?.reactions.set(messageId, data);
  renderMessage(messageId);
}

function addMessage(message) {
  const open = state.open;
  if (!open || message.conversation_id !== open.id) return;
  const known = open.messages.get(message.id);
  if (known?.status && !message.status) message.status = known.status;
  open.messages.set(message.id, message);
  open.lastSeq = Math.max(open.lastSeq, message.seq);
  renderMessage(message.id);
}

function removeMessage(messageId) {
  state.open?.messages.delete(messageId);
  document.querySelector(`#messages [data-id="${messageId}"]`)?.remove();
}

function renderMessage(messageId) {
  const open = state.open;
  const message = open?.messages.get(messageId);
  if (!message) return;
  const list = $("#messages");
  let item = list.querySelector(`[data-id="${messageId}"]`);
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  if (!item) {
    item = document.createElement("li");
    item.dataset.id = messageId;
    // keep seq order whatever the arrival order
    const after = [...list.children].find((node) => Number(node.dataset.seq) > message.seq);
    list.insertBefore(item, after || null);
  }
  const mine = message.sender_id === state.me.user_id;
  item.className = "msg" + (mine ? " mine" : "") + (message.is_deleted ? " deleted" : "");
  item.dataset.seq = message.seq;
  item.replaceChildren();

  const who = document.createElement("div");
  who.className = "who";
  who.textContent = nameOf(message.sender_id);
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = message.is_deleted ? "message deleted" : message.content;
  item.append(who, body);

  const reactions = document.createElement("div");
  reactions.className = "reactions";
  const counts = new Map();
  for (const reaction of open.reactions.get(messageId) || []) {
    const entry = counts.get(reaction.reaction) || { count: 0, mine: false };
    entry.count += 1;
    entry.mine ||= reaction.user_id === state.me.user_id;
    counts.set(reaction.reaction, entry);
  }
  for (const [emoji, { count, mine: reacted }] of counts) {
    const chip = document.createElement("span");
    chip.dataset.emoji = emoji;
    chip.className = reacted ? "mine" : "";
    chip.textContent = `${emoji} ${count}`;
    reactions.append(chip);
  }
  item.append(reactions);

  const meta = document.createElement("div");
  meta.className = "meta";
  const actions = document.createElement("span");
  actions.className = "actions";
  if (!message.is_deleted) {
    for (const emoji of EMOJIS) actions.append(actionButton(emoji, `react ${emoji}`, () => toggleReaction(message, emoji)));
    if (mine) {
      actions.append(actionButton("edit", "edit", () => startEditing(message)));
      actions.append(actionButton("delete", "delete", () => deleteMessage(message)));
    }
  }
  const time = document.createElement("time");
  time.textContent = new Date(message.sent_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.append(actions, time);
  if (message.is_edited && !message.is_deleted) {
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = "edited";
    meta.append(edited);
  }
  if (mine) {
    const ticks = document.createElement("span");
    ticks.className = "ticks";
    ticks.dataset.status = message.status || "sent";
    ticks.title = ticks.dataset.status;
    ticks.textContent = ticks.dataset.status === "sent" ? "✓" : "✓✓";
    meta.append(ticks);
  }
  item.append(meta);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function actionButton(text, label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", onClick);
  return button;
}

function applyStatus(conversationId, upToSeq, status, lower = false) {
  const open = state.open;
  if (!open || open.id !== conversationId) return;
  for (const message of open.messages.values()) {
    if (message.sender_id !== state.me.user_id) continue;
    const current = message.status || "sent";
    const raise = message.seq <= upToSeq && STATUS_RANK[status] > STATUS_RANK[current];
    const drop = lower && message.seq > upToSeq && STATUS_RANK[current] > STATUS_RANK[status];
    if (raise || drop) {
      message.status = status;
      renderMessage(message.id);
    }
  }
}

function markRead() {
  const open = state.open;
  if (!open?.channel || open.lastSeq === 0 || document.hidden) return;
  open.channel.push("mark_read", { up_to_seq: open.lastSeq });
}

function renderPresence(open) {
  const others = open.presence.list((id) => id).filter((id) => id !== state.me.user_id);
  $("#presence").textContent = others.length ? `online: ${others.map(nameOf).join(", ")}` : "";
}

function showTyping(userId, typing) {
  if (userId === state.me.user_id) return;
  clearTimeout(state.typingShown.get(userId));
  if (typing) state.typingShown.set(userId, setTimeout(() => clearTyping(userId), 6000));
  else state.typingShown.delete(userId);
  const names = [...state.typingShown.keys()].map(nameOf);
  $("#typing").hidden = names.length === 0;
  $("#typing").textContent = names.length ? `${names.join(", ")} typing…` : "";
}

function clearTyping(userId) {
  showTyping(userId, false);
}

function typingChanged() {
  const channel = state.open?.channel;
  if (!channel) return;
  if (!state.typingSent) {
    state.typingSent = true;
    channel.push("user_typing", { typing: true });
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, 2500);
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (state.typingSent && state.open?.channel) state.open.channel.push("user_typing", { typing: false });
  state.typingSent = false;
}

// -- sending, editing, deleting, reacting ----------------------------------------------------

const clientRandom = () => Math.floor(Math.random() * 2 ** 31);

function send(content) {
  const open = state.open;
  const payload = { content, message_type: "text", client_random: clientRandom() };
  stopTyping();
  open.channel.push("new_message", payload)
    .receive("ok", ({ message }) => addMessage(message))
    .receive("error", (reply) => alert(`not sent: ${reply.reason}`))
    .receive("timeout", () => alert("not sent: no answer (offline?)"));
}

function startEditing(message) {
  state.editing = message.id;
  $("#text").value = message.content;
  $("#editing").hidden = false;
  $("#send").textContent = "Save";
  $("#text").focus();
}

function stopEditing() {
  state.editing = null;
  $("#editing").hidden = true;
  $("#send").textContent = "Send";
}

function saveEdit(content) {
  const messageId = state.editing;
  stopEditing();
  state.open.channel.push("edit_message", { message_id: messageId, content })
    .receive("ok", ({ message }) => addMessage(message))
    .receive("error", (reply) => alert(`not edited: ${reply.reason}`));
}

function deleteMessage(message) {
  state.open.channel.push("delete_message", { message_id: message.id, delete_for_everyone: true })
    .receive("error", (reply) => alert(`not deleted: ${reply.reason}`));
}

function toggleReaction(message, emoji) {
  const mine = (state.open.reactions.get(message.id) || [])
    .some((r) => r.user_id === state.me.user_id && r.reaction === emoji);
  state.open.channel.push(mine ? "remove_reaction" : "add_reaction", { message_id: message.id, reaction: emoji })
    .receive("error", (reply) => alert(`reaction refused: ${reply.reason}`));
}

// -- scheduled messages ----------------------------------------------------------------------

async function loadScheduled() {
  const open = state.open;
  const pending = await api("GET", `/messages/scheduled?conversation_id=${open.id}`); // a bare array
  const list = $("#scheduled-list");
  list.replaceChildren();
  for (const scheduled of pending.filter((s) => s.status === "pending")) {
    const item = document.createElement("li");
    item.dataset.id = scheduled.id;
    item.textContent = `${new Date(scheduled.scheduled_at).toLocaleString()}: ${scheduled.content} `;
    item.append(actionButton("cancel", "cancel scheduled message", async () => {
      await api("DELETE", `/messages/scheduled/${scheduled.id}`);
      await loadScheduled();
    }));
    list.append(item);
  }
  $("#scheduled").hidden = list.children.length === 0;
}

async function schedule() {
  const content = $("#text").value.trim();
  const when = $("#schedule-at").value;
  if (!content || !when) return;
  try {
    await api("POST", "/messages/scheduled", {
      conversation_id: state.open.id,
      content,
      message_type: "text",
      client_random: clientRandom(),
      scheduled_at: new Date(when).toISOString(),
    });
    $("#text").value = "";
  } catch (error) {
    alert(`not scheduled: ${error.message}`);
  }
  await loadScheduled();
}

function defaultScheduleTime() {
  const at = new Date(Date.now() + 5 * 60 * 1000);
  at.setSeconds(0, 0);
  return new Date(at.getTime() - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// -- wiring ----------------------------------------------------------------------------------

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await signIn($("#signin-name").value.trim());
  } catch (error) {
    $("#signin-error").hidden = false;
    $("#signin-error").textContent = error.message;
  }
});
$("#new-conversation").addEventListener("submit", async (event) => {
  event.preventDefault();
  const names = $("#new-names").value.split(",").map((n) => n.trim()).filter(Boolean);
  if (!names.length) return;
  try {
    await startConversation(names, $("#new-group-name").value.trim());
    $("#new-names").value = "";
    $("#new-group-name").value = "";
  } catch (error) {
    alert(error.message);
  }
});
$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const content = $("#text").value.trim();
  if (!content || !state.open?.channel) return;
  $("#text").value = "";
  if (state.editing) saveEdit(content);
  else send(content);
});
$("#text").addEventListener("input", typingChanged);
$("#text").addEventListener("keydown", (event) => {
  if (event.key === "Escape") stopEditing();
});
$("#cancel-edit").addEventListener("click", () => {
  stopEditing();
  $("#text").value = "";
});
$("#schedule").addEventListener("click", schedule);
$("#schedule-at").value = defaultScheduleTime();
$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem("whispr-chat-name");
  location.reload();
});
document.addEventListener("visibilitychange", markRead);

const remembered = sessionStorage.getItem("whispr-chat-name");
if (remembered) signIn(remembered);
