/* tinyllm in the browser: the tokenizer, the forward pass, sampling and a chat box, in one small file.
 *
 * This is the Python model (tinyllm/model.py, attention.py, tokenizer.py, generate.py) written out by hand,
 * the way llama2.c writes a transformer out in C: no libraries, just loops over Float32Arrays.
 * The page first loads model.js, which sets window.TINYLLM_MODEL = {name, character, config, tokenizer,
 * chat, safetensors (base64; matrices as int8 rows), steering (chapter 7's topic directions)}; this file then
 * mounts a chat into <div id="tinyllm-chat">.
 * Under node, `require("./chat.js")` gives the same API: load(modelData) -> {tokenizer, model, reply, ...}.
 */
(function (root) {
  "use strict";

  // ---------------------------------------------------------------- 1. weights: safetensors -> Float32Array

  function base64ToBytes(text) {
    const binary = atob(text);   // a string with one char per byte
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function float16(bits) {   // IEEE half precision: 1 sign bit, 5 exponent bits, 10 mantissa bits
    const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
    if (exponent === 0) return sign * mantissa * 2 ** -24;                  // subnormal (or zero)
    if (exponent === 31) return mantissa ? NaN : sign * Infinity;
    return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }

  const scratch = new DataView(new ArrayBuffer(4));
  function bfloat16(bits) {   // bfloat16 is the top half of a float32
    scratch.setUint32(0, bits << 16);
    return scratch.getFloat32(0);
  }

  const READERS = {   // dtype -> [bytes per number, read number i of a DataView]; safetensors is little-endian
    F32: [4, (view, i) => view.getFloat32(4 * i, true)],
    F16: [2, (view, i) => float16(view.getUint16(2 * i, true))],
    BF16: [2, (view, i) => bfloat16(view.getUint16(2 * i, true))],
    I8: [1, (view, i) => view.getInt8(i)],   // a matrix rounded to int8 rows, with NAME.scale (chapter 10)
  };

  // The file: an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}}, the data.
  function readSafetensors(bytes) {
    const file = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLength = Number(file.getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    const tensors = {};
    for (const [name, entry] of Object.entries(header)) {
      if (name === "__metadata__") continue;   // free-form strings, not a tensor
      const { dtype, shape, data_offsets: [start, end] } = entry;
      if (!READERS[dtype]) throw new Error(`${name}: unsupported dtype ${dtype} (this page reads F16, BF16, F32, I8)`);
      const [size, read] = READERS[dtype], count = (end - start) / size;
      const view = new DataView(bytes.buffer, bytes.byteOffset + 8 + headerLength + start, end - start);
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = read(view, i);
      tensors[name] = { shape, data };
    }
    for (const [name, { data }] of Object.entries(tensors)) {   // int8 rows back to floats: w = q * the row's scale
      const scale = tensors[`${name}.scale`];
      if (!scale) continue;
      const columns = data.length / scale.data.length;
      for (let i = 0; i < data.length; i++) data[i] *= scale.data[Math.floor(i / columns)];
      delete tensors[`${name}.scale`];
    }
    return tensors;
  }

  // ---------------------------------------------------------------- 2. tokenizer: byte-level BPE (tokenizer.py)

  const PY_PATTERN = String.raw`'(?i:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
  // The same pattern for JavaScript. Two differences had to be written out by hand (checked on every code point):
  // - \s: Python's regex module counts U+0085 as space and U+FEFF not; JavaScript the other way round.
  // - (?i:s) also matches U+017F (long s) in Python, so the case-insensitive contractions list it.
  // \p{L} and \p{N} follow each engine's Unicode version: letters added in the newest Unicode may differ.
  const SPACE = String.raw`\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;
  const JS_PATTERN = String.raw`'(?:[sdmtSDMT\u017f]|[lL][lL]|[vV][eE]|[rR][eE])| ?\p{L}+| ?\p{N}{1,3}` +
    String.raw`| ?[^${SPACE}\p{L}\p{N}]+|[${SPACE}]+(?![^${SPACE}])|[${SPACE}]+`;

  function makeTokenizer(spec) {
    if (spec.format !== "tinyllm-bpe" || spec.version !== 1) throw new Error("not a tinyllm-bpe version 1 tokenizer");
    if (spec.pattern !== PY_PATTERN) throw new Error("the tokenizer has a pre-tokenizer pattern this page does not know");
    const pretoken = new RegExp(JS_PATTERN, "gu");
    const vocab = [];                  // id -> its bytes: 0-255 are the bytes, merge k makes id 256 + k
    for (let i = 0; i < 256; i++) vocab.push(Uint8Array.of(i));
    const ranks = new Map();           // pair key -> merged id (a lower id = learned earlier = applied first)
    const key = (a, b) => a * 1048576 + b;
    for (const [a, b] of spec.merges) {
      ranks.set(key(a, b), vocab.length);
      vocab.push(Uint8Array.of(...vocab[a], ...vocab[b]));
    }
    const special = {};                // "<|end|>" -> id: after the merges, in list order
    spec.special_tokens.forEach((token, i) => { special[token] = vocab.length + i; });
    const specialNames = Object.fromEntries(Object.entries(special).map(([token, id]) => [id, token]));
    const size = vocab.length + spec.special_tokens.length;
    if (size !== spec.vocab_size) throw new Error(`the tokenizer declares ${spec.vocab_size} tokens but holds ${size}`);
    const encoder = new TextEncoder(), words = new Map();

    // One pre-token: apply the earliest-learned merge present (leftmost on ties), everywhere, until none applies.
    function encodeWord(word) {
      let ids = Array.from(encoder.encode(word));
      while (ids.length > 1) {
        let best = Infinity;
        for (let i = 0; i + 1 < ids.length; i++) best = Math.min(best, ranks.get(key(ids[i], ids[i + 1])) ?? Infinity);
        if (best === Infinity) break;
        const [a, b] = spec.merges[best - 256], merged = [];
        for (let i = 0; i < ids.length; i++) {
          if (ids[i] === a && ids[i + 1] === b) { merged.push(best); i++; } else merged.push(ids[i]);
        }
        ids = merged;
      }
      return ids;
    }

    // Text -> ids. Never makes special tokens: a typed "<|end|>" is just seven characters.
    // (Python also cuts the text after ". " before pre-tokenizing, for its cache; the cut is always a
    // pre-token boundary anyway, so skipping it gives the same ids.)
    function encode(text) {
      const ids = [];
      for (const [word] of text.matchAll(pretoken)) {
        if (!words.has(word)) words.set(word, encodeWord(word));
        ids.push(...words.get(word));
      }
      return ids;
    }

    function encodeChat(messages, addGenerationPrompt = false) {
      const ids = [];
      for (const { role, content } of messages) {
        if (role !== "user" && role !== "assistant") throw new Error(`unknown role ${role}: use user or assistant`);
        ids.push(special[`<|${role}|>`], ...encode(content), special["<|end|>"]);
      }
      if (addGenerationPrompt) ids.push(special["<|assistant|>"]);
      return ids;
    }

    const tokenBytes = (id) => (id in specialNames ? encoder.encode(specialNames[id]) : vocab[id]);

    // A decoder for streaming: a character cut between two tokens comes out whole, once both have arrived.
    function streamDecoder() {
      const decoder = new TextDecoder("utf-8");   // not fatal: bad bytes become U+FFFD, as errors="replace"
      return { piece: (id) => decoder.decode(tokenBytes(id), { stream: true }), end: () => decoder.decode() };
    }

    function decode(ids) {
      const decoder = streamDecoder();
      return ids.map(decoder.piece).join("") + decoder.end();
    }

    return { encode, encodeChat, decode, streamDecoder, special, size };
  }

  // ---------------------------------------------------------------- 3. the model: one token at a time (model.py)

  // y = x W^T + b, W stored (out, in) row-major as PyTorch's nn.Linear. Sums run in JS numbers (float64).
  function linear(out, x, W, b, nOut, nIn) {
    for (let o = 0; o < nOut; o++) {
      let sum = 0;
      for (let i = 0, row = o * nIn; i < nIn; i++) sum += W[row + i] * x[i];
      out[o] = b ? sum + b[o] : sum;
    }
    return out;
  }

  function layerNorm(out, x, weight, bias) {   // mean 0, variance 1 (biased, eps 1e-5), then scale and shift
    const n = x.length;
    let mean = 0, variance = 0;
    for (let i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (let i = 0; i < n; i++) variance += (x[i] - mean) ** 2;
    const scale = 1 / Math.sqrt(variance / n + 1e-5);
    for (let i = 0; i < n; i++) out[i] = (x[i] - mean) * scale * weight[i] + bias[i];
    return out;
  }

  function makeModel(config, tensors) {
    const { vocab_size: V, n_layers: L, d_model: C, n_heads: H, d_ff: F, context_length: T } = config;
    const hd = C / H;
    const embedding = tensors["head.weight"] ?? tensors["token_embedding.weight"];   // tied: one matrix, two uses
    if (!embedding) throw new Error("the weights have neither head.weight nor token_embedding.weight");
    const weight = (name, shape) => {   // a tensor, checked against the shape the config implies
      const t = name === "head.weight" ? embedding : tensors[name];
      if (!t) throw new Error(`the weights have no ${name}`);
      if (String(t.shape) !== String(shape)) throw new Error(`${name} is [${t.shape}], the config says [${shape}]`);
      return t.data;
    };
    const emb = weight("head.weight", [V, C]), pos = weight("position_embedding.weight", [T, C]);
    const blocks = Array.from({ length: L }, (_, i) => {
      const w = (name, ...shape) => weight(`blocks.${i}.${name}`, shape);
      return {
        norm1: [w("norm1.weight", C), w("norm1.bias", C)], norm2: [w("norm2.weight", C), w("norm2.bias", C)],
        qkv: [w("attention.qkv.weight", 3 * C, C), w("attention.qkv.bias", 3 * C)],
        proj: [w("attention.proj.weight", C, C), w("attention.proj.bias", C)],
        up: [w("feed_forward.up.weight", F, C), w("feed_forward.up.bias", F)],
        down: [w("feed_forward.down.weight", C, F), w("feed_forward.down.bias", C)],
      };
    });
    const finalNorm = [weight("final_norm.weight", [C]), weight("final_norm.bias", [C])];
    // scratch buffers, reused for every token
    const [x, h, att, delta] = [C, C, C, C].map((n) => new Float32Array(n));
    const qkv = new Float32Array(3 * C), hidden = new Float32Array(F), scores = new Float64Array(T);

    // Steering (chapter 7): a vector added to the residual stream after `after` blocks (0: the embeddings).
    let steer = null;
    const setSteer = (after, vector) => {
      if (vector && !(Number.isInteger(after) && after >= 0 && after <= L)) {
        throw new Error(`cannot steer after ${after} blocks: this model has ${L} (0 steers the embeddings)`);
      }
      steer = vector ? { after, vector } : null;
    };
    const addSteer = (blocksDone) => {
      if (steer && steer.after === blocksDone) for (let i = 0; i < C; i++) x[i] += steer.vector[i];
    };

    // The keys and values every block has seen so far, one row of C numbers per position.
    const newCache = () => ({ length: 0, keys: blocks.map(() => new Float32Array(T * C)),
                              values: blocks.map(() => new Float32Array(T * C)) });

    // Each head: softmax(q.k / sqrt(hd)) over all cached positions (all are in the past: no mask needed),
    // then the weighted sum of their values, written into the head's slice of `att`.
    function attend(keys, values, n) {
      for (let head = 0; head < H; head++) {
        const offset = head * hd;
        let max = -Infinity, total = 0;
        for (let t = 0; t < n; t++) {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qkv[offset + i] * keys[t * C + offset + i];
          scores[t] = dot / Math.sqrt(hd);
          max = Math.max(max, scores[t]);
        }
        for (let t = 0; t < n; t++) total += (scores[t] = Math.exp(scores[t] - max));
        for (let i = 0; i < hd; i++) {
          let sum = 0;
          for (let t = 0; t < n; t++) sum += scores[t] * values[t * C + offset + i];
          att[offset + i] = sum / total;
        }
      }
    }

    function block(b, keys, values, p) {
      layerNorm(h, x, ...b.norm1);   // pre-norm: x + attention(LN(x)), then x + feed_forward(LN(x))
      linear(qkv, h, ...b.qkv, 3 * C, C);   // q, k, v: the three consecutive thirds
      keys.set(qkv.subarray(C, 2 * C), p * C);
      values.set(qkv.subarray(2 * C), p * C);
      attend(keys, values, p + 1);
      linear(delta, att, ...b.proj, C, C);
      for (let i = 0; i < C; i++) x[i] += delta[i];
      linear(hidden, layerNorm(h, x, ...b.norm2), ...b.up, F, C);
      for (let i = 0; i < F; i++) hidden[i] = Math.max(hidden[i], 0);   // ReLU
      linear(delta, hidden, ...b.down, C, F);
      for (let i = 0; i < C; i++) x[i] += delta[i];
    }

    // Feed one token at the next position; return the logits for the token after it (or nothing, to save time
    // on prompt tokens whose prediction nobody reads).
    function step(id, cache, wantLogits = true) {
      const p = cache.length;
      if (p >= T) throw new Error(`${p + 1} tokens do not fit in the context of ${T}`);
      for (let i = 0; i < C; i++) x[i] = emb[id * C + i] + pos[p * C + i];
      addSteer(0);
      blocks.forEach((b, i) => { block(b, cache.keys[i], cache.values[i], p); addSteer(i + 1); });
      cache.length++;
      if (!wantLogits) return null;
      return linear(new Float32Array(V), layerNorm(h, x, ...finalNorm), emb, null, V, C);   // the tied head
    }

    function logits(ids, cache = newCache()) {   // the logits after the last of `ids`, fed into `cache`
      if (ids.length === 0) throw new Error("no tokens to read");
      return ids.map((id, i) => step(id, cache, i === ids.length - 1)).at(-1);
    }

    const parameters = Object.entries(tensors)   // the tied matrix counts once, even when the file has both names
      .filter(([name]) => name !== "token_embedding.weight" || !tensors["head.weight"])
      .reduce((n, [, t]) => n + t.data.length, 0);
    return { config, newCache, step, logits, parameters, setSteer };
  }

  // ---------------------------------------------------------------- 4. choosing the next token (generate.py)

  // A small seeded PRNG (mulberry32). It is not PyTorch's generator: sampled replies differ from Python's,
  // only greedy ones (temperature 0) are the same.
  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function argmax(values) {   // the first maximum, like torch.argmax
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }

  function softmax(values) {
    const max = Math.max(...values), exps = values.map((v) => Math.exp(v - max));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((e) => e / total);
  }

  // temperature, then top-k (ties at the k-th are kept), then top-p, then sample from the softmax
  function sample(logits, { temperature, topK, topP }, random) {
    let order = Array.from(logits.keys()).filter((i) => logits[i] > -Infinity);
    order.sort((a, b) => logits[b] - logits[a]);   // most likely first
    let scaled = order.map((i) => logits[i] / temperature);
    if (topK != null && topK < scaled.length) scaled = scaled.filter((v) => v >= scaled[topK - 1]);
    if (topP != null && topP < 1) {   // drop a token once the more likely ones before it reach p: the top one stays
      const probs = softmax(scaled);
      let before = 0, keep = 0;
      while (keep < probs.length && before < topP) before += probs[keep++];
      scaled = scaled.slice(0, keep);
    }
    const probs = softmax(scaled);
    let u = random();
    for (let i = 0; i < probs.length; i++) if ((u -= probs[i]) < 0) return order[i];
    return order[probs.length - 1];   // u was eaten by rounding
  }

  function checkSettings({ temperature, topK, topP, maxNewTokens }) {   // the messages of check_settings
    if (!(temperature >= 0)) throw new Error(`temperature must be 0 (greedy) or more, got ${temperature}`);
    if (topK != null && !(Number.isInteger(topK) && topK >= 1)) {
      throw new Error(`top_k must be a whole number, at least 1 (or empty for no limit), got ${topK}`);
    }
    if (topP != null && !(topP > 0 && topP <= 1)) {
      throw new Error(`top_p must be in (0, 1] (or empty for no limit), got ${topP}`);
    }
    if (!(maxNewTokens >= 1)) throw new Error(`max_new_tokens must be at least 1, got ${maxNewTokens}`);
  }

  // Up to maxNewTokens new ids after the prompt, stopping at stopId (not yielded); banned ids are never chosen.
  function* generateIds(model, prompt, settings, stopId, banned) {
    const random = mulberry32(settings.seed);
    const cache = model.newCache();
    let logits = model.logits(prompt, cache);
    for (let n = 0; n < settings.maxNewTokens; n++) {
      for (const id of banned) logits[id] = -Infinity;
      const token = settings.temperature === 0 ? argmax(logits) : sample(logits, settings, random);
      if (token === stopId) return;
      yield token;
      if (n + 1 < settings.maxNewTokens) logits = model.step(token, cache);
    }
  }

  // ---------------------------------------------------------------- 5. chatting (ChatModel, Conversation)

  function load(data) {
    const tokenizer = makeTokenizer(data.tokenizer);
    const model = makeModel(data.config, readSafetensors(base64ToBytes(data.safetensors)));
    const character = data.character;
    const T = data.config.context_length, endId = tokenizer.special["<|end|>"];
    // every special token but <|end|>, and the ids the model has beyond the tokenizer's vocabulary
    const banned = Object.values(tokenizer.special).filter((id) => id !== endId);
    for (let id = tokenizer.size; id < data.config.vocab_size; id++) banned.push(id);
    const chat = data.chat;   // chapter 6's sampling defaults (tinyllm.export.CHAT_DEFAULTS)
    // chapter 7's topic directions, each of C numbers, added after `steering.after` blocks (none in older pages)
    const steering = data.steering ?? { after: 0, topic: null, safetensors: null };
    const directions = steering.safetensors ? readSafetensors(base64ToBytes(steering.safetensors)) : {};
    const topics = Object.keys(directions).sort();

    // Steer as the next replies are written: `scale` times the direction of `topic` (none, or scale 0: as trained).
    function setSteering(steer) {
      const { topic, scale } = steer ?? {};
      if (!scale) return model.setSteer(null);
      if (!directions[topic]) throw new Error(`no direction ${JSON.stringify(topic)}: the page has ${topics.join(", ")}`);
      model.setSteer(steering.after, directions[topic].data.map((v) => scale * v));
    }
    const defaults = { temperature: chat.temperature, topK: chat.top_k, topP: chat.top_p,
                       maxNewTokens: chat.max_new_tokens };

    // The prompt for `messages`, leaving room for the reply: the oldest exchanges go first, then the message is cut.
    // As ChatModel.prompt_ids: MARKERS are <|user|>, <|end|> and <|assistant|>, and a prompt has room for them and
    // MIN_MESSAGE_TOKENS of the message (generate.py's names).
    const MARKERS = 3, MIN_MESSAGE_TOKENS = 5;
    function promptIds(messages, maxNewTokens, onNote = () => {}) {
      const budget = T - maxNewTokens, least = MARKERS + MIN_MESSAGE_TOKENS;
      if (budget < least) {
        throw new Error(`max_new_tokens must leave room for the prompt: at most ${T - least}, got ${maxNewTokens}`);
      }
      let ids = tokenizer.encodeChat(messages, true);
      while (ids.length > budget && messages.length > 1) ids = tokenizer.encodeChat(messages = messages.slice(2), true);
      if (ids.length > budget) {
        onNote(`the message is ${ids.length - MARKERS} tokens long; ${character} reads only its last ${budget - MARKERS}`);
        ids = [ids[0], ...ids.slice(-(budget - 1))];   // keep <|user|>, then the end of the message
      }
      return ids;
    }

    // The reply to `text`, piece by piece: what each token adds to the text (a token holding half of a
    // character adds nothing until the next one completes it). A generator, so the page can draw in between.
    function* stream(text, options = {}) {
      const settings = { ...defaults, ...options };
      for (const name in defaults) if (settings[name] === undefined) settings[name] = defaults[name];
      settings.seed ??= (Math.random() * 2 ** 32) >>> 0;   // no seed: a different reply each time
      if (!String(text).trim()) throw new Error(`say something: ${character} cannot answer an empty message`);
      checkSettings(settings);
      setSteering(settings.steer);
      const messages = [...(settings.history || []), { role: "user", content: String(text) }];
      const prompt = promptIds(messages, settings.maxNewTokens, settings.onNote);
      const decoder = tokenizer.streamDecoder();
      for (const token of generateIds(model, prompt, settings, endId, banned)) {
        settings.onToken?.(token);
        const piece = decoder.piece(token);
        if (piece) yield piece;
      }
      const tail = decoder.end();
      if (tail) yield tail;
    }

    const reply = (text, options) => [...stream(text, options)].join("");

    // A multi-turn chat: it keeps the history; the model sees as much of it as fits.
    function conversation(settings = {}) {
      const self = { messages: [], forgetting: false, settings };
      self.stream = function* (text, seed) {
        const room = T - (settings.maxNewTokens ?? defaults.maxNewTokens);
        const asked = [...self.messages, { role: "user", content: text }];
        if (!self.forgetting && asked.length > 1 && tokenizer.encodeChat(asked, true).length > room) {
          self.forgetting = true;   // said once, when the history first outgrows the prompt
          settings.onNote?.(`the conversation no longer fits in the model's ${room}-token prompt: ` +
                            `from now on ${character} forgets the oldest exchanges`);
        }
        const pieces = [];
        for (const piece of stream(text, { ...settings, seed: seed ?? settings.seed, history: self.messages })) {
          pieces.push(piece);
          yield piece;
        }
        self.messages.push({ role: "user", content: text }, { role: "assistant", content: pieces.join("") });
      };
      self.say = (text, seed) => [...self.stream(text, seed)].join("");
      self.reset = () => { self.messages = []; self.forgetting = false; };
      return self;
    }

    return { name: data.name, character, config: data.config, tokenizer, model, defaults, banned,
             steering: { after: steering.after, topic: steering.topic, topics }, promptIds, stream, reply, conversation };
  }

  // ---------------------------------------------------------------- 6. the chat box (browser only)

  function element(tag, props = {}, children = []) {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  }

  function setting(id, label, value, attributes) {   // a labelled number input
    const input = element("input", { id, type: "number", value: value ?? "" });
    for (const [name, v] of Object.entries(attributes)) input.setAttribute(name, v);
    return element("label", { className: "tinyllm-setting" }, [label + " ", input]);
  }

  const nextFrame = () => new Promise((resolve) => setTimeout(resolve, 0));   // let the page draw and react

  // A topic and a slider: steer the replies towards the topic (scale > 0) or away from it (scale < 0), chapter 7.
  function steeringControls(bot) {
    const { topics, topic, after } = bot.steering;
    if (!topics.length) return [];
    const select = element("select", { id: "tinyllm-steer-topic" },
                           topics.map((name) => element("option", { value: name, textContent: name })));
    select.value = topic;
    const slider = element("input", { id: "tinyllm-steer-scale", type: "range", min: -8, max: 8, step: 0.5, value: 0 });
    const shown = element("output", { id: "tinyllm-steer-shown", textContent: "0" });
    slider.addEventListener("input", () => { shown.textContent = slider.value; });
    return [element("div", { className: "tinyllm-settings" }, [
      element("label", { className: "tinyllm-setting" }, ["steer towards ", select]),
      element("label", { className: "tinyllm-setting" }, ["scale ", slider, " ", shown]),
      element("span", { className: "tinyllm-meta", textContent: `(chapter 7: added after ${after} block${after === 1 ? "" : "s"}; at 0, ${bot.character} as trained)` })])];
  }

  function buildWidget(container, bot) {
    const { character, config, defaults: d } = bot;
    const millions = (bot.model.parameters / 1e6).toFixed(2);
    const parts = {
      log: element("div", { className: "tinyllm-log" }),
      input: element("input", { id: "tinyllm-input", type: "text", autocomplete: "off",
                                placeholder: `Say something to ${character}…` }),
      send: element("button", { id: "tinyllm-send", type: "submit", textContent: "Send" }),
      reset: element("button", { id: "tinyllm-reset", type: "button", textContent: "New conversation" }),
    };
    parts.log.setAttribute("aria-live", "polite");
    parts.form = element("form", { className: "tinyllm-form" }, [parts.input, parts.send, parts.reset]);
    container.classList.add("tinyllm");
    container.replaceChildren(
      element("div", { className: "tinyllm-header" }, [element("strong", { textContent: character }),
        element("span", { className: "tinyllm-meta", textContent: ` · ${millions}M parameters, ` +
          `${config.n_layers} layers × ${config.d_model} wide · runs entirely in this page: no server` })]),
      parts.log, parts.form,
      element("div", { className: "tinyllm-settings" }, [
        setting("tinyllm-temperature", "temperature (0 = greedy)", d.temperature, { min: 0, max: 2, step: 0.1 }),
        setting("tinyllm-top-k", "top-k", d.topK, { min: 1, step: 1 }),
        setting("tinyllm-top-p", "top-p", d.topP, { min: 0.05, max: 1, step: 0.05 }),
        setting("tinyllm-seed", "seed", 0, { step: 1 })]),
      ...steeringControls(bot),
      parts.speed = element("div", { id: "tinyllm-speed", className: "tinyllm-meta" }));
    return parts;
  }

  function mount(container, data) {
    const message = (role, text) => element("div", { className: `tinyllm-message ${role}`, textContent: text });
    let bot;
    try {
      bot = load(data);
    } catch (error) {   // say what is wrong where the chat would have been
      container.replaceChildren(message("error", `cannot load the model: ${error.message}`));
      return null;
    }
    const { log, input, send, reset, form, speed } = buildWidget(container, bot);
    const say = (role, text) => log.appendChild(message(role, text));
    let pending = null;   // the reply being written: a note about the prompt goes just before it
    const conversation = bot.conversation({ onNote: (text) => log.insertBefore(message("note", text), pending) });
    let run = 0;          // bumped by "New conversation", so an unfinished reply stops writing into the cleared log
    const number = (id) => {   // an empty box means "no limit"
      const value = container.querySelector("#" + id).value.trim();
      return value === "" ? null : Number(value);
    };

    async function answer(text) {
      const mine = ++run;
      say("user", text);
      send.disabled = true;
      Object.assign(conversation.settings, { temperature: number("tinyllm-temperature") ?? 0,
        topK: number("tinyllm-top-k"), topP: number("tinyllm-top-p"), maxNewTokens: bot.defaults.maxNewTokens,
        steer: bot.steering.topics.length ? { topic: container.querySelector("#tinyllm-steer-topic").value,
                                             scale: number("tinyllm-steer-scale") } : null });
      // turn n of the conversation uses seed + n: the turns differ, and the same chat replays the same
      const seed = (number("tinyllm-seed") ?? 0) + conversation.messages.length / 2;
      const reply = pending = say("assistant", "");
      let tokens = 0;
      conversation.settings.onToken = () => tokens++;
      const started = performance.now();
      try {
        for (const piece of conversation.stream(text, seed)) {
          if (mine !== run) return;
          reply.textContent += piece;
          log.scrollTop = log.scrollHeight;
          await nextFrame();
        }
        const seconds = (performance.now() - started) / 1000;   // as the reader saw it, drawing included
        speed.textContent = `last reply: ${tokens} tokens in ${seconds.toFixed(2)} s, ` +
          `${Math.round(tokens / seconds)} tokens per second in this browser`;
      } catch (error) {   // bad settings, say: shown in place of the reply
        reply.className = "tinyllm-message error";
        reply.textContent = error.message;
      } finally {
        if (mine === run) { reply.dataset.done = "true"; send.disabled = false; pending = null; }
      }
    }

    form.addEventListener("submit", (event) => {   // Enter in the input submits the form too
      event.preventDefault();
      if (send.disabled) return;   // still answering: the text stays in the box
      const text = input.value;
      input.value = "";
      if (text.trim()) answer(text);
      else say("error", `say something: ${bot.character} cannot answer an empty message`);
    });
    reset.addEventListener("click", () => {
      run++;
      conversation.reset();
      log.replaceChildren();
      send.disabled = false;
      pending = null;
      input.focus();
    });
    for (const node of document.querySelectorAll(".tinyllm-character")) node.textContent = bot.character;
    if (document.body.dataset.tinyllmTitle !== undefined) document.title = `Chat with ${bot.character}`;
    return bot;
  }

  const api = { load, mount, makeTokenizer, makeModel, readSafetensors, base64ToBytes, mulberry32,
                PY_PATTERN, JS_PATTERN };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  if (typeof window !== "undefined") {
    window.tinyllm = api;
    const start = () => {
      const container = document.getElementById("tinyllm-chat");
      if (container && window.TINYLLM_MODEL) api.chat = mount(container, window.TINYLLM_MODEL);
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
