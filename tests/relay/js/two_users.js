// Two users talk through the relay with the official phoenix JavaScript client.
// Run by tests/relay/test_phoenix_js.py, which passes the endpoint, tokens and ids in the
// environment and checks the JSON this prints on its last line. Exits non-zero on any failure.
"use strict";

const { Socket, Presence } = require("phoenix");
const WebSocket = require("ws");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
};

const ENDPOINT = env("RELAY_ENDPOINT"); // e.g. ws://127.0.0.1:1234/messaging/socket
const CONV = env("CONVERSATION_ID");
const users = {
  alice: { id: env("ALICE_ID"), token: env("ALICE_TOKEN") },
  bob: { id: env("BOB_ID"), token: env("BOB_TOKEN") },
};
const STEP_MS = 10000;

function step(name, register) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out: ${name}`)), STEP_MS);
    register(
      (value) => { clearTimeout(timer); resolve(value); },
      (error) => { clearTimeout(timer); reject(new Error(`${name}: ${JSON.stringify(error)}`)); },
    );
  });
}

function push(channel, event, payload) {
  return step(`push ${event}`, (ok, fail) => {
    channel.push(event, payload).receive("ok", ok).receive("error", fail).receive("timeout", () => fail("timeout"));
  });
}

function connect(who) {
  const socket = new Socket(ENDPOINT, {
    transport: WebSocket,
    params: { token: who.token, user_id: who.id },
    heartbeatIntervalMs: 1000,
  });
  socket.connect();
  return socket;
}

// Resolves with the first value `handler` returns that is not undefined, for events on `channel`.
function next(channel, event, handler) {
  return step(`${event} on ${channel.topic}`, (ok) => {
    const ref = channel.on(event, (payload) => {
      const value = handler(payload);
      if (value !== undefined) {
        channel.off(event, ref);
        ok(value);
      }
    });
  });
}

async function main() {
  const result = {};
  const sockets = { alice: connect(users.alice), bob: connect(users.bob) };

  // Each user joins their own topic and the conversation; presence tracks both.
  const channels = {};
  const presences = {};
  for (const name of ["alice", "bob"]) {
    const user = sockets[name].channel(`user:${users[name].id}`, {});
    const summaries = next(user, "conversation_summaries", (p) => p.summaries);
    result[`${name}_user_join`] = await step(`join user:${name}`, (ok, fail) =>
      user.join().receive("ok", ok).receive("error", fail));
    result[`${name}_summary_ids`] = (await summaries).map((c) => c.id);
    const conv = sockets[name].channel(`conversation:${CONV}`, {});
    presences[name] = new Presence(conv);
    channels[name] = { user, conv };
    const joined = await step(`join conversation as ${name}`, (ok, fail) =>
      conv.join().receive("ok", ok).receive("error", fail));
    result[`${name}_joined_conversation_id`] = joined.conversation.id;
  }

  const bothOnline = () => presences.alice.list((id) => id).sort();
  result.alice_sees_online = await step("alice sees both online", (ok) => {
    const check = () => { if (bothOnline().length === 2) ok(bothOnline()); };
    presences.alice.onSync(check);
    check();
  });

  // Bob types; Alice sees it.
  const typing = next(channels.alice.conv, "user_typing", (p) => (p.user_id === users.bob.id ? p : undefined));
  await push(channels.bob.conv, "user_typing", { typing: true });
  result.typing = await typing;

  // Alice sends; Bob receives it on the conversation and on his own topic.
  const onConv = next(channels.bob.conv, "new_message", (p) => p);
  const onUser = next(channels.bob.user, "new_message", (p) => p);
  const sent = await push(channels.alice.conv, "new_message", {
    content: "hello from phoenix.js", message_type: "text", client_random: 424242,
  });
  result.sent = sent.message;
  result.bob_got = (await onConv).message;
  result.bob_got_on_user_topic = (await onUser).message;

  // Bob reads; Alice gets the read receipt and sees the conversation read.
  const receipt = next(channels.alice.user, "delivery_status", (p) => (p.status === "read" ? p : undefined));
  const read = next(channels.alice.conv, "conversation_read", (p) => p);
  result.bob_read_reply = await push(channels.bob.conv, "message_read", { message_id: sent.message.id });
  result.receipt = await receipt;
  result.conversation_read = await read;

  // Bob leaves; Alice's presence drops him.
  const gone = step("bob leaves presence", (ok) => {
    presences.alice.onSync(() => {
      const online = presences.alice.list((id) => id);
      if (online.length === 1) ok(online);
    });
  });
  sockets.bob.disconnect();
  result.online_after_bob_left = await gone;

  sockets.alice.disconnect();
  console.log(JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (error) => { console.error(error.stack || String(error)); process.exit(1); },
);
