#pragma once

// JSON (de)serialisation of the option fields that the training commands (distill, pretrain) share:
// the corpus and batching, the optimiser and the run cadence. Each command writes its own fields
// around these blocks, so the saved key order stays the command's own.

#include <nlohmann/json.hpp>
#include <string>

#include "tensor/check.h"

namespace kdnas::train_options_json {

// Parses saved training options; anything but a JSON object is an error naming `who`.
inline nlohmann::json parse(const std::string& text, const char* who) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  KDNAS_CHECK(j.is_object(), who, ": the saved training options are not a JSON object");
  return j;
}

// Reads j[key] into field when present; a value of the wrong type is an error naming `who`.
template <class T>
void get(const nlohmann::json& j, const char* key, T& field, const char* who) {
  if (!j.contains(key)) return;
  try {
    j.at(key).get_to(field);
  } catch (const nlohmann::json::exception&) {
    KDNAS_CHECK(false, who, ": saved option '", key, "' has the wrong type");
  }
}

// corpus, text_column, eval_every_sentence, eval_first, batch, batch_tokens, seq, steps.
template <class J, class O>
void put_data(J& j, const O& o) {
  j["corpus"] = o.corpus;
  j["text_column"] = o.corpus_opt.text_column;
  j["eval_every_sentence"] = o.corpus_opt.eval_every;
  j["eval_first"] = o.corpus_opt.eval_first;
  j["batch"] = o.batch;
  j["batch_tokens"] = o.batch_tokens;
  j["seq"] = o.seq;
  j["steps"] = o.steps;
}

template <class O>
void get_data(const nlohmann::json& j, O& o, const char* who) {
  get(j, "corpus", o.corpus, who);
  get(j, "text_column", o.corpus_opt.text_column, who);
  get(j, "eval_every_sentence", o.corpus_opt.eval_every, who);
  get(j, "eval_first", o.corpus_opt.eval_first, who);
  get(j, "batch", o.batch, who);
  get(j, "batch_tokens", o.batch_tokens, who);
  get(j, "seq", o.seq, who);
  get(j, "steps", o.steps, who);
}

// lr, warmup, decay, weight_decay, clip, dropout, precision (the training GEMMs': part of the
// recipe, so --resume keeps it; absent in checkpoints written before --precision existed, which
// were all f32: the field's default, "f32", stays).
template <class J, class O>
void put_optim(J& j, const O& o) {
  j["lr"] = o.lr;
  j["warmup"] = o.warmup;
  j["decay"] = o.decay;
  j["weight_decay"] = o.weight_decay;
  j["clip"] = o.clip;
  j["dropout"] = o.dropout;
  j["precision"] = o.precision;
}

template <class O>
void get_optim(const nlohmann::json& j, O& o, const char* who) {
  get(j, "lr", o.lr, who);
  get(j, "warmup", o.warmup, who);
  get(j, "decay", o.decay, who);
  get(j, "weight_decay", o.weight_decay, who);
  get(j, "clip", o.clip, who);
  get(j, "dropout", o.dropout, who);
  get(j, "precision", o.precision, who);
}

// seed, log_every, eval_every, save_every, device (absent in checkpoints written before
// --device existed: the field's default, "cpu", stays).
template <class J, class O>
void put_run(J& j, const O& o) {
  j["seed"] = o.seed;
  j["log_every"] = o.log_every;
  j["eval_every"] = o.eval_every;
  j["save_every"] = o.save_every;
  j["device"] = o.device;
}

template <class O>
void get_run(const nlohmann::json& j, O& o, const char* who) {
  get(j, "seed", o.seed, who);
  get(j, "log_every", o.log_every, who);
  get(j, "eval_every", o.eval_every, who);
  get(j, "save_every", o.save_every, who);
  get(j, "device", o.device, who);
}

}  // namespace kdnas::train_options_json
