/* Prolita Sandbox web chat: plain JS, no build step, no external resources.
 *
 * Talks to the embedded fake Telegram on the same origin:
 *   /sandbox/personas            personas (GET) and new users (POST)
 *   /_sim/chats/{id}             the chat as the user sees it (messages, reply keyboard, commands)
 *   /_sim/chats/{id}/send|press|contact|location   what the user does
 *   /sandbox/chats/{id}/keyboard|media|vote        reply-keyboard buttons, photos/files, poll votes
 *   /_sim/events                 Server-Sent Events: the chat is refreshed when something happens
 */
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };

  const ROLE_LABEL = { ketua_rt: "Ketua RT", petugas: "Petugas", admin: "Admin", warga: "Warga", baru: "Baru" };
  const ROLE_ORDER = { ketua_rt: 0, petugas: 1, admin: 2, warga: 3, baru: 4 };
  const AVATAR_COLORS = ["#e17076", "#7bc862", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774"];
  const EVENT_KINDS = "message,edit,delete,callback_answer,chat_action,poll,user_created,block,unblock,pin,unpin,reaction";

  const state = {
    personas: [],
    bot: null,
    current: null, // persona id
    chat: null, // last /_sim/chats view
    unread: {},
    rendered: new Map(), // group key -> {node, sig}
    keyboardOpen: true,
    defaultLocation: [0.1337, 117.495],
    typingTimer: null,
    refreshTimer: null,
    refreshing: false,
    refreshAgain: false,
  };

  // ------------------------------------------------------------------------ http helpers

  async function api(method, url, body) {
    const options = { method, headers: {} };
    if (body instanceof FormData) options.body = body;
    else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (err) {
      throw new Error("Sandbox tidak bisa dihubungi. Apakah masih berjalan?");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      if (response.status === 413) throw new Error("File terlalu besar untuk dikirim (Request Entity Too Large).");
    }
    if (!response.ok) throw new Error((data && (data.error || data.description)) || `HTTP ${response.status}`);
    return data;
  }

  function toast(text, kind) {
    const node = el("div", { class: "toast" + (kind === "error" ? " error" : "") }, text);
    $("#toasts").append(node);
    setTimeout(() => node.remove(), 3600);
  }

  function showAlert(text) {
    $("#alert-text").textContent = text;
    openDialog($("#alert-dialog"));
  }

  function openDialog(dialog) {
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
  }

  function closeDialog(dialog) {
    if (typeof dialog.close === "function") dialog.close();
    else dialog.removeAttribute("open");
  }

  function confirmBox(text) {
    return new Promise((resolve) => {
      const dialog = $("#confirm-dialog");
      $("#confirm-text").textContent = text;
      const done = () => {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "ok");
      };
      dialog.returnValue = "";
      dialog.addEventListener("close", done);
      openDialog(dialog);
    });
  }

  // ------------------------------------------------------------------------------ personas

  function initials(name) {
    return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("") || "?";
  }

  function avatar(id, name) {
    return el("div", { class: "avatar", style: `background:${AVATAR_COLORS[Math.abs(id) % AVATAR_COLORS.length]}` }, initials(name));
  }

  async function loadPersonas() {
    const data = await api("GET", "/sandbox/personas");
    state.bot = data.bot;
    state.personas = data.personas.slice().sort((a, b) =>
      a.seeded === b.seeded ? (ROLE_ORDER[a.role] ?? 9) - (ROLE_ORDER[b.role] ?? 9) : a.seeded ? -1 : 1);
    const status = $("#sidebar-status");
    if (data.status !== "running") {
      status.hidden = false;
      status.textContent = data.status === "preparing" ? "Menyiapkan data contoh…" : data.status === "starting"
        ? "Bot sedang dinyalakan…" : `Status: ${data.status}`;
    } else status.hidden = true;
    if (state.bot) $("#bot-name").textContent = state.bot.first_name;
    renderPersonas();
    return data.status;
  }

  function renderPersonas() {
    const list = $("#personas");
    list.replaceChildren(...state.personas.map((p) => {
      const unread = state.unread[p.id] || 0;
      return el("li", {
        class: "persona" + (p.id === state.current ? " active" : ""),
        role: "option",
        "aria-selected": p.id === state.current ? "true" : "false",
        dataset: { personaId: String(p.id), role: p.role },
        onclick: () => selectPersona(p.id),
      },
      avatar(p.id, p.full_name),
      el("div", { class: "persona-body" },
        el("div", { class: "persona-name" }, p.full_name),
        el("div", { class: "persona-title" }, el("span", { class: `role role-${p.role}` }, ROLE_LABEL[p.role] || p.role), p.title)),
      unread ? el("span", { class: "badge" }, String(unread)) : null);
    }));
  }

  function persona(id) {
    return state.personas.find((p) => p.id === id) || null;
  }

  async function selectPersona(id) {
    const p = persona(id);
    if (!p) return;
    if (state.current !== id) {
      state.current = id;
      state.chat = null;
      state.rendered.clear();
      for (const node of [...$("#messages").children]) if (!node.classList.contains("empty")) node.remove();
      state.keyboardOpen = true;
    }
    state.unread[id] = 0;
    localStorage.setItem("sandbox.persona", String(id));
    if (location.hash !== `#u=${id}`) history.replaceState(null, "", `#u=${id}`);
    const app = $("#app");
    app.classList.remove("no-persona", "show-sidebar");
    $("#no-persona").hidden = true;
    $("#me").textContent = `Anda: ${p.full_name} · ${ROLE_LABEL[p.role] || p.role}`;
    $("#me").title = `Anda memakai persona ${p.full_name} (${p.title})`;
    renderPersonas();
    await refresh(true);
    $("#composer-input").focus();
  }

  // ----------------------------------------------------------------------------- rendering

  function utf16Slice(text, start, end) {
    return text.slice(start, end); // JS strings are UTF-16, like Telegram's entity offsets
  }

  function safeUrl(url) {
    return /^(https?:|tg:|mailto:|tel:)/i.test(url || "") ? url : null;
  }

  function entityNode(entity, content) {
    switch (entity.type) {
      case "bold": return el("b");
      case "italic": return el("i");
      case "underline": return el("u");
      case "strikethrough": return el("s");
      case "spoiler": return el("span", { class: "spoiler", title: "spoiler", onclick: (e) => e.currentTarget.classList.add("shown") });
      case "code": return el("code");
      case "pre": return el("pre", { dataset: entity.language ? { language: entity.language } : {} });
      case "blockquote":
      case "expandable_blockquote": return el("blockquote");
      case "text_link": {
        const href = safeUrl(entity.url);
        return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span");
      }
      case "url": {
        const href = safeUrl(/^[a-z]+:/i.test(content) ? content : `http://${content}`);
        return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span");
      }
      case "email": return el("a", { href: `mailto:${content}` });
      case "phone_number": return el("a", { href: `tel:${content.replace(/[^\d+]/g, "")}` });
      case "bot_command": return el("span", { class: "cmd", title: "Kirim perintah ini", onclick: () => sendText(content) });
      case "mention":
      case "hashtag":
      case "cashtag":
      case "text_mention": return el("a", { href: "#", onclick: (e) => e.preventDefault() });
      default: return el("span");
    }
  }

  /** Text with Telegram entities (nested; UTF-16 offsets) as DOM nodes. */
  function renderText(text, entities) {
    const root = el("div", { class: "text" });
    const sorted = (entities || []).filter((e) => e.length > 0)
      .slice().sort((a, b) => a.offset - b.offset || b.length - a.length);
    const build = (parent, start, end, list) => {
      let pos = start;
      let i = 0;
      while (i < list.length) {
        const entity = list[i];
        const entityEnd = Math.min(entity.offset + entity.length, end);
        const inner = [];
        let j = i + 1;
        while (j < list.length && list[j].offset < entityEnd) {
          const child = list[j];
          inner.push({ ...child, length: Math.min(child.offset + child.length, entityEnd) - child.offset });
          j += 1;
        }
        if (entity.offset > pos) parent.append(utf16Slice(text, pos, entity.offset));
        const node = entityNode(entity, utf16Slice(text, entity.offset, entityEnd));
        build(node, Math.max(entity.offset, pos), entityEnd, inner);
        parent.append(node);
        pos = Math.max(pos, entityEnd);
        i = j;
      }
      if (pos < end) parent.append(utf16Slice(text, pos, end));
    };
    build(root, 0, text.length, sorted);
    return root;
  }

  function fileUrl(fileId) {
    return `/sandbox/files/${encodeURIComponent(fileId)}`;
  }

  function humanSize(bytes) {
    if (!bytes && bytes !== 0) return "";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function timeOf(message) {
    const date = new Date(message.date * 1000);
    return date.toLocaleTimeString("id-ID", { hour: "2-digit", minute: "2-digit" });
  }

  function dayOf(message) {
    return new Date(message.date * 1000).toLocaleDateString("id-ID", { weekday: "long", day: "numeric", month: "long" });
  }

  function photoThumb(sizes) {
    const thumb = sizes.find((s) => s.width >= 320) || sizes[sizes.length - 1];
    const full = sizes[sizes.length - 1];
    return el("img", { src: fileUrl(thumb.file_id), alt: "foto", loading: "lazy", dataset: { full: fileUrl(full.file_id) },
      onclick: (e) => openLightbox(e.currentTarget.dataset.full) });
  }

  function documentNode(doc) {
    const href = fileUrl(doc.file_id);
    const name = doc.file_name || "file";
    return el("div", { class: "doc" },
      el("a", { class: "doc-icon", href, download: name, title: "Unduh" }, "⬇"),
      el("div", {},
        el("div", { class: "doc-name" }, el("a", { href, download: name }, name)),
        el("div", { class: "doc-size" }, [humanSize(doc.file_size), doc.mime_type].filter(Boolean).join(" · "))));
  }

  function locationNode(loc) {
    const lat = Number(loc.latitude).toFixed(5);
    const lon = Number(loc.longitude).toFixed(5);
    return el("div", { class: "location" },
      el("div", { class: "map", title: `${lat}, ${lon}` }, el("span", { class: "pin" }, "📍")),
      el("div", { class: "coords" }, `📍 ${lat}, ${lon} `,
        el("a", { href: `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=17/${lat}/${lon}`, target: "_blank", rel: "noopener" }, "peta")));
  }

  function contactNode(contact) {
    const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
    return el("div", { class: "contact" }, avatar(contact.user_id || 1, name),
      el("div", {}, el("div", { class: "doc-name" }, name), el("div", { class: "contact-phone" }, contact.phone_number)));
  }

  function pollNode(message) {
    const poll = message.poll;
    const total = poll.total_voter_count || 0;
    const mine = new Set(state.votes?.[poll.id] || []);
    const voted = mine.size > 0;
    const showResults = voted || poll.is_closed;
    const multi = poll.allows_multiple_answers;
    const node = el("div", { class: "poll" },
      el("div", { class: "poll-q" }, poll.question),
      el("div", { class: "poll-kind" }, [poll.is_anonymous ? "Polling anonim" : "Polling terbuka",
        poll.type === "quiz" ? "kuis" : null, multi ? "boleh pilih beberapa" : null, poll.is_closed ? "ditutup" : null]
        .filter(Boolean).join(" · ")));
    poll.options.forEach((option, index) => {
      const pct = total ? Math.round((option.voter_count / total) * 100) : 0;
      const button = el("button", { class: "poll-opt" + (mine.has(index) ? " mine" : ""), type: "button", disabled: poll.is_closed,
        dataset: { option: String(index) }, onclick: () => vote(message, index) },
        showResults ? el("span", { class: "pct" }, `${pct}%`) : (multi ? "☐ " : "○ "), option.text,
        showResults ? el("div", { class: "bar", style: `width:${pct}%` }) : null);
      node.append(button);
    });
    node.append(el("div", { class: "poll-total" }, `${total} suara`));
    return node;
  }

  function quoteNode(reply) {
    const who = reply.from && reply.from.is_bot ? (state.bot ? state.bot.first_name : "Bot") : "Anda";
    const what = reply.text || reply.caption || (reply.photo ? "🖼 Foto" : reply.document ? "📎 File" : reply.location ? "📍 Lokasi" : "Pesan");
    return el("div", { class: "quote" }, el("b", {}, who), what.slice(0, 140));
  }

  function inlineKeyboard(message) {
    const rows = (message.reply_markup && message.reply_markup.inline_keyboard) || [];
    if (!rows.length) return null;
    return el("div", { class: "ikb" }, rows.map((row) => el("div", { class: "ikb-row" }, row.map((button) => {
      const corner = button.url ? "↗" : button.web_app ? "▣" : button.switch_inline_query !== undefined ? "↪" : null;
      return el("button", { class: "ik-btn", type: "button", title: button.text,
        dataset: { data: button.callback_data || "", messageId: String(message.message_id) },
        onclick: (e) => pressInline(e.currentTarget, message, button) },
      button.text, corner ? el("span", { class: "corner" }, corner) : null);
    }))));
  }

  /** One bubble for a message, or for an album (several messages with one media_group_id). */
  function bubble(items) {
    const first = items[0];
    const m = first.message;
    const out = first.sender === "user";
    const photos = items.filter((i) => i.message.photo);
    const docs = items.filter((i) => i.message.document);
    const captionItem = items.find((i) => i.message.caption);
    const body = el("div", { class: "msg", dataset: { messageId: String(first.message_id), kind: first.kind } });
    if (m.reply_to_message) body.append(quoteNode(m.reply_to_message));
    let hasText = false;
    if (photos.length) {
      body.append(el("div", { class: `photos n${Math.min(photos.length, 10)}` }, photos.map((i) => photoThumb(i.message.photo))));
    }
    for (const item of docs) body.append(documentNode(item.message.document));
    if (m.location) body.append(locationNode(m.location));
    if (m.venue && !m.location) body.append(locationNode(m.venue.location));
    if (m.contact) body.append(contactNode(m.contact));
    if (m.poll) body.append(pollNode(m));
    if (m.sticker) body.append(el("div", { class: "sticker", title: "stiker" }, m.sticker.emoji || "🖼"));
    if (m.voice) body.append(el("div", {}, `🎤 Pesan suara · ${m.voice.duration || 0} dtk`));
    for (const key of ["video", "audio", "animation", "video_note"]) {
      if (m[key]) body.append(documentNode({ ...m[key], file_name: m[key].file_name || key }));
    }
    if (m.dice) body.append(el("div", { class: "sticker" }, `${m.dice.emoji} ${m.dice.value}`));
    if (m.text !== undefined) {
      body.append(renderText(m.text, m.entities));
      hasText = true;
    } else if (captionItem) {
      const caption = renderText(captionItem.message.caption, captionItem.message.caption_entities);
      caption.classList.add("caption");
      body.append(caption);
      hasText = true;
    }
    if (!hasText && (photos.length || m.sticker)) body.classList.add("media-only");
    const edited = items.some((i) => i.message.edit_date);
    body.append(el("span", { class: "meta" }, edited ? el("span", { class: "edited" }, "diedit ") : null, timeOf(m), out ? " ✓✓" : null));
    const row = el("div", { class: `row ${out ? "out" : "in"}` }, body);
    const keyboard = inlineKeyboard(items[items.length - 1].message);
    if (keyboard) row.append(keyboard);
    return row;
  }

  function groups(messages) {
    const result = [];
    for (const item of messages) {
      if (item.deleted) continue; // deleted for both sides, as in Telegram
      const groupId = item.message.media_group_id;
      const last = result[result.length - 1];
      if (groupId && last && last.groupId === groupId && last.sender === item.sender) last.items.push(item);
      else result.push({ key: groupId ? `g:${groupId}` : `m:${item.message_id}`, groupId, sender: item.sender, items: [item] });
    }
    return result;
  }

  function renderMessages(view) {
    const box = $("#messages");
    const seen = new Set();
    const nodes = [];
    let lastDay = null;
    for (const group of groups(view.messages)) {
      const day = dayOf(group.items[0].message);
      if (day !== lastDay) {
        const dayKey = `d:${day}`;
        let entry = state.rendered.get(dayKey);
        if (!entry) {
          entry = { node: el("div", { class: "day" }, day), sig: day };
          state.rendered.set(dayKey, entry);
        }
        seen.add(dayKey);
        nodes.push(entry.node);
        lastDay = day;
      }
      const sig = JSON.stringify(group.items.map((i) => i.message)) + JSON.stringify(state.votes || {});
      let entry = state.rendered.get(group.key);
      if (!entry || entry.sig !== sig) {
        const node = bubble(group.items);
        if (entry) entry.node.replaceWith(node);
        entry = { node, sig };
        state.rendered.set(group.key, entry);
      }
      seen.add(group.key);
      nodes.push(entry.node);
    }
    for (const [key, entry] of state.rendered) {
      if (!seen.has(key)) {
        entry.node.remove();
        state.rendered.delete(key);
      }
    }
    // put the nodes in order (appending an existing node moves it)
    let cursor = box.firstChild;
    for (const node of nodes) {
      while (cursor && cursor.classList && cursor.classList.contains("empty")) cursor = cursor.nextSibling;
      if (cursor === node) cursor = node.nextSibling;
      else box.insertBefore(node, cursor);
    }
    $("#empty").hidden = nodes.length > 0;
  }

  function renderKeyboard(view) {
    const container = $("#reply-keyboard");
    const keyboard = view.keyboard;
    const toggle = $("#kb-toggle");
    if (!keyboard || !(keyboard.keyboard || []).length) {
      container.hidden = true;
      toggle.hidden = true;
      $("#composer-input").placeholder = "Tulis pesan…";
      return;
    }
    toggle.hidden = false;
    const sig = JSON.stringify(keyboard);
    if (container.dataset.sig !== sig) {
      container.dataset.sig = sig;
      container.replaceChildren(...keyboard.keyboard.map((row) => el("div", { class: "kb-row" }, row.map((button) => {
        const label = typeof button === "string" ? button : button.text;
        return el("button", { class: "kb-btn", type: "button", dataset: { text: label },
          onclick: () => pressKeyboard(typeof button === "string" ? { text: button } : button) }, label);
      }))));
      if (view.keyboard_hidden === false) state.keyboardOpen = true;
    }
    container.hidden = !state.keyboardOpen || view.keyboard_hidden;
    $("#composer-input").placeholder = keyboard.input_field_placeholder || "Tulis pesan…";
  }

  function renderCommands(view) {
    const commands = view.commands || [];
    $("#menu-btn").hidden = commands.length === 0;
    $("#commands-menu").replaceChildren(...commands.map((c) => el("button", { type: "button",
      onclick: () => { $("#commands-menu").hidden = true; sendText(`/${c.command}`); } },
    el("span", { class: "cmd-name" }, `/${c.command}`), " ", el("span", { class: "cmd-desc" }, c.description))));
  }

  async function refresh(force) {
    if (state.current === null) return;
    if (state.refreshing) {
      state.refreshAgain = true;
      return;
    }
    state.refreshing = true;
    const id = state.current;
    try {
      const view = await api("GET", `/_sim/chats/${id}`);
      if (id !== state.current) return;
      state.chat = view;
      const box = $("#messages");
      const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
      renderMessages(view);
      renderKeyboard(view);
      renderCommands(view);
      if (nearBottom || force) box.scrollTop = box.scrollHeight; // the keyboard may have shrunk the view
    } catch (err) {
      if (force) toast(err.message, "error");
    } finally {
      state.refreshing = false;
      if (state.refreshAgain) {
        state.refreshAgain = false;
        refresh();
      }
    }
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refresh, 40);
  }

  // -------------------------------------------------------------------------------- actions

  async function act(path, body) {
    if (state.current === null) throw new Error("Pilih persona dulu.");
    return api("POST", `/_sim/chats/${state.current}/${path}`, body);
  }

  async function sendText(text) {
    text = text.trim();
    if (!text) return;
    try {
      await act("send", { text });
      scheduleRefresh();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function pressInline(button, message, spec) {
    if (spec.url) {
      window.open(spec.url, "_blank", "noopener");
      return;
    }
    if (spec.callback_data === undefined) {
      toast("Jenis tombol ini tidak didukung di sandbox.");
      return;
    }
    button.classList.add("busy");
    try {
      const data = await act("press", { data: spec.callback_data, message_id: message.message_id, timeout: 10 });
      const answer = data.result || {};
      if (answer.text) {
        if (answer.show_alert) showAlert(answer.text);
        else toast(answer.text);
      } else if (answer.url) window.open(answer.url, "_blank", "noopener");
      else if (answer.answered === false) toast("Bot belum menjawab tombol ini.");
    } catch (err) {
      toast(err.message, "error");
    } finally {
      button.classList.remove("busy");
      scheduleRefresh();
    }
  }

  async function pressKeyboard(button) {
    const path = `/sandbox/chats/${state.current}/keyboard`;
    try {
      if (button.request_contact) {
        const p = persona(state.current);
        if (!(await confirmBox(`Bagikan nomor HP Anda (${p && p.phone}) kepada ${state.bot ? state.bot.first_name : "bot"}?`))) return;
        await api("POST", path, { text: button.text });
      } else if (button.request_location) {
        const where = await askLocation();
        if (!where) return;
        await api("POST", path, { text: button.text, latitude: where[0], longitude: where[1] });
      } else if (button.request_poll || button.request_users || button.request_chat || button.web_app) {
        toast("Jenis tombol ini tidak didukung di sandbox.");
        return;
      } else {
        await api("POST", path, { text: button.text });
      }
      scheduleRefresh();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  function askLocation() {
    return new Promise((resolve) => {
      const dialog = $("#location-dialog");
      const form = $("#location-form");
      form.latitude.value = state.defaultLocation[0];
      form.longitude.value = state.defaultLocation[1];
      $("#location-error").hidden = true;
      const onSubmit = (e) => {
        const lat = Number(String(form.latitude.value).replace(",", "."));
        const lon = Number(String(form.longitude.value).replace(",", "."));
        if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
          e.preventDefault();
          $("#location-error").textContent = "Koordinat tidak valid. Contoh: 0.1337 dan 117.495.";
          $("#location-error").hidden = false;
          return;
        }
        cleanup();
        closeDialog(dialog);
        resolve([lat, lon]);
      };
      const onClose = () => {
        cleanup();
        resolve(null);
      };
      const cleanup = () => {
        form.removeEventListener("submit", onSubmit);
        dialog.removeEventListener("close", onClose);
      };
      form.addEventListener("submit", onSubmit);
      dialog.addEventListener("close", onClose);
      openDialog(dialog);
      form.latitude.select();
    });
  }

  async function shareLocation() {
    const where = await askLocation();
    if (!where) return;
    try {
      await act("location", { latitude: where[0], longitude: where[1] });
      scheduleRefresh();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  async function shareContact() {
    const p = persona(state.current);
    if (!(await confirmBox(`Kirim kontak Anda (${p.full_name}, ${p.phone}) ke bot?`))) return;
    try {
      await act("contact", {});
      scheduleRefresh();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  function chooseMedia(kind, files) {
    if (!files.length) return;
    const dialog = $("#media-dialog");
    const form = $("#media-form");
    $("#media-title").textContent = kind === "photo" ? `Kirim ${files.length} foto` : `Kirim ${files.length} file`;
    $("#media-error").hidden = true;
    form.caption.value = "";
    const preview = $("#media-preview");
    preview.replaceChildren(...[...files].map((file) => kind === "photo" && file.type.startsWith("image/")
      ? el("img", { src: URL.createObjectURL(file), alt: file.name })
      : el("div", { class: "file" }, `${file.name} (${humanSize(file.size)})`)));
    const onSubmit = async (e) => {
      e.preventDefault();
      const body = new FormData();
      body.append("as", kind);
      body.append("caption", form.caption.value);
      for (const file of files) body.append("file", file, file.name);
      const submit = form.querySelector("[type=submit]");
      submit.disabled = true;
      try {
        await api("POST", `/sandbox/chats/${state.current}/media`, body);
        cleanup();
        closeDialog(dialog);
        scheduleRefresh();
      } catch (err) {
        $("#media-error").textContent = err.message;
        $("#media-error").hidden = false;
      } finally {
        submit.disabled = false;
      }
    };
    const cleanup = () => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", cleanup);
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", cleanup);
    openDialog(dialog);
  }

  async function vote(message, index) {
    const poll = message.poll;
    state.votes = state.votes || {};
    const mine = new Set(state.votes[poll.id] || []);
    let options;
    if (poll.allows_multiple_answers) {
      if (mine.has(index)) mine.delete(index);
      else mine.add(index);
      options = [...mine].sort();
    } else options = mine.has(index) ? [] : [index];
    try {
      await api("POST", `/sandbox/chats/${state.current}/vote`, { message_id: message.message_id, option_ids: options });
      state.votes[poll.id] = options;
      scheduleRefresh();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  function openLightbox(src) {
    const box = $("#lightbox");
    box.querySelector("img").src = src;
    box.hidden = false;
  }

  // ------------------------------------------------------------------------------ new user

  function newUser() {
    const dialog = $("#new-user-dialog");
    const form = $("#new-user-form");
    form.reset();
    $("#new-user-error").hidden = true;
    openDialog(dialog);
    form.first_name.focus();
  }

  async function submitNewUser(e) {
    e.preventDefault();
    const form = e.currentTarget;
    const body = Object.fromEntries(new FormData(form).entries());
    try {
      const created = await api("POST", "/sandbox/personas", body);
      closeDialog($("#new-user-dialog"));
      await loadPersonas();
      await selectPersona(created.id);
    } catch (err) {
      $("#new-user-error").textContent = err.message;
      $("#new-user-error").hidden = false;
    }
  }

  // --------------------------------------------------------------------------------- events

  function connectEvents() {
    const source = new EventSource(`/_sim/events?kinds=${EVENT_KINDS}`);
    const handle = (e) => {
      let event;
      try {
        event = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (event.kind === "user_created") {
        loadPersonas().catch(() => {});
        return;
      }
      if (event.chat_id === state.current) {
        if (event.kind === "chat_action") showTyping(event.data.action);
        else {
          if (event.kind === "message" && event.data.sender === "bot") showTyping(null);
          scheduleRefresh();
        }
      } else if (event.kind === "message" && event.data.sender === "bot" && persona(event.chat_id)) {
        state.unread[event.chat_id] = (state.unread[event.chat_id] || 0) + 1;
        renderPersonas();
      }
    };
    for (const kind of EVENT_KINDS.split(",")) source.addEventListener(kind, handle);
    source.onopen = () => {
      scheduleRefresh(); // catch up on anything missed while disconnected
      loadPersonas().catch(() => {});
    };
  }

  const ACTIONS = { typing: "mengetik…", upload_photo: "mengirim foto…", upload_document: "mengirim file…",
    find_location: "mencari lokasi…", choose_sticker: "memilih stiker…" };

  function showTyping(action) {
    const status = $("#chat-status");
    clearTimeout(state.typingTimer);
    if (action && action !== "cancel") {
      status.textContent = ACTIONS[action] || "sedang beraktivitas…";
      status.classList.add("typing");
      state.typingTimer = setTimeout(() => showTyping(null), 5000);
    } else {
      status.textContent = "bot";
      status.classList.remove("typing");
    }
  }

  // ---------------------------------------------------------------------------------- wiring

  function wire() {
    const input = $("#composer-input");
    const send = () => {
      const text = input.value;
      if (!text.trim()) return;
      input.value = "";
      autosize();
      sendText(text);
    };
    const autosize = () => {
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
    };
    input.addEventListener("input", autosize);
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send();
      }
    });
    $("#send-btn").addEventListener("click", send);
    $("#start-btn").addEventListener("click", () => sendText("/start"));
    $("#kb-toggle").addEventListener("click", () => {
      state.keyboardOpen = !state.keyboardOpen || (state.chat && state.chat.keyboard_hidden);
      if (state.chat) state.chat.keyboard_hidden = false;
      $("#reply-keyboard").hidden = !state.keyboardOpen;
      $("#messages").scrollTop = $("#messages").scrollHeight;
    });
    $("#attach-btn").addEventListener("click", (e) => {
      e.stopPropagation();
      $("#commands-menu").hidden = true;
      $("#attach-menu").hidden = !$("#attach-menu").hidden;
    });
    $("#menu-btn").addEventListener("click", (e) => {
      e.stopPropagation();
      $("#attach-menu").hidden = true;
      $("#commands-menu").hidden = !$("#commands-menu").hidden;
    });
    document.addEventListener("click", () => {
      $("#attach-menu").hidden = true;
      $("#commands-menu").hidden = true;
    });
    $("#attach-menu").addEventListener("click", (e) => {
      const choice = e.target.closest("[data-attach]");
      if (!choice) return;
      $("#attach-menu").hidden = true;
      const kind = choice.dataset.attach;
      if (kind === "photo") $("#photo-input").click();
      else if (kind === "document") $("#file-input").click();
      else if (kind === "location") shareLocation();
      else if (kind === "contact") shareContact();
    });
    $("#photo-input").addEventListener("change", (e) => {
      chooseMedia("photo", [...e.target.files]);
      e.target.value = "";
    });
    $("#file-input").addEventListener("change", (e) => {
      chooseMedia("document", [...e.target.files]);
      e.target.value = "";
    });
    $("#new-user-btn").addEventListener("click", newUser);
    $("#new-user-form").addEventListener("submit", submitNewUser);
    $("#back-btn").addEventListener("click", () => $("#app").classList.toggle("show-sidebar"));
    $("#lightbox").addEventListener("click", () => { $("#lightbox").hidden = true; });
    for (const button of document.querySelectorAll("dialog [data-close]")) {
      button.addEventListener("click", () => closeDialog(button.closest("dialog")));
    }
    // Drop files on the chat to send them as photos (images) or files.
    const chat = $("#chat");
    chat.addEventListener("dragover", (e) => e.preventDefault());
    chat.addEventListener("drop", (e) => {
      e.preventDefault();
      if (state.current === null) return;
      const files = [...(e.dataTransfer.files || [])];
      if (files.length) chooseMedia(files.every((f) => f.type.startsWith("image/")) ? "photo" : "document", files);
    });
  }

  async function boot() {
    wire();
    try {
      const info = await api("GET", "/sandbox/info");
      if (info.default_location) state.defaultLocation = info.default_location;
    } catch (err) {
      toast(err.message, "error");
    }
    let status = "preparing";
    for (let attempt = 0; attempt < 240; attempt += 1) {
      try {
        status = await loadPersonas();
        if (status === "running" || state.personas.length) break;
      } catch (err) { /* still starting */ }
      await new Promise((r) => setTimeout(r, 500));
    }
    connectEvents();
    const fromHash = Number((location.hash.match(/u=(\d+)/) || [])[1]);
    const saved = Number(localStorage.getItem("sandbox.persona"));
    const wanted = persona(fromHash) ? fromHash : persona(saved) ? saved : null;
    if (wanted !== null) await selectPersona(wanted);
    if (status !== "running") {
      const wait = setInterval(async () => {
        if ((await loadPersonas().catch(() => null)) === "running") clearInterval(wait);
      }, 1000);
    }
  }

  window.sandbox = { state, refresh }; // for debugging from the browser console
  boot();
})();
