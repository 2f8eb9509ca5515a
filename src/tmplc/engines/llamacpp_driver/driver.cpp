// tmplc llama.cpp driver: renders chat templates with llama.cpp's own C++ Jinja engine
// (common/jinja/*, used by `llama-server --jinja`) and with its built-in templates
// (src/llama-chat.cpp, used without --jinja), compiled standalone.
//
// This file is tmplc's own code; the llama.cpp sources it links are fetched at setup
// time from the llama-cpp-python sdist (see tmplc/engines/llamacpp_fetch.py).
//
// Protocol: stdin holds one JSON array of jobs; stdout receives one JSON array of
// results, in job order, written as "[" / one result per line ("...,") / "]" and
// flushed after every result, so that a caller can recover the finished results if a
// job crashes the process. A job's exception becomes {"error": "..."} and does not
// stop the other jobs.
//
// Jobs:
//   {"template": str, "messages": [{"role": str, "content": str}, ...],
//    "bos_token": str, "eos_token": str, "add_generation_prompt": bool,
//    optional: "add_bos": bool (strip a leading bos_token, as llama-server does when the
//    GGUF's add_bos_token is true; default false), "add_eos": bool (same for a trailing
//    eos_token), "enable_thinking": bool (default true, llama-server's default),
//    "workarounds": bool (default true: apply llama-server's message workarounds),
//    "extra_context": object (added to the template context, like chat_template_kwargs),
//    "raw_messages": bool (messages as given, with their tool_calls/reasoning_content: a TEST
//    HOOK for tool conversations; llama-server's own message normalisation is not mirrored),
//    "date": "YYYY-MM-DD" (a TEST HOOK, not a llama.cpp option: "now" is local midnight of
//    that day for strftime_now, datetime and date_string; default: the clock)}
//      -> {"output": str} | {"error": str}
//   {"caps": str}      -> {"caps": {name: bool}}  (jinja::caps_get of the template)
//   {"detect": str}    -> {"name": str}  (llm_chat_detect_template; "" when unknown;
//                                         "dots1" for the one unnamed built-in)
//   {"builtin": str, "messages": [...], "add_generation_prompt": bool}
//      -> {"output": str}  (llama_chat_apply_template: name or template text)
//   {"list_builtins": true} -> {"names": [str, ...]}
//
// What a `--jinja` render does, mirrored from common/chat.cpp
// (common_chat_templates_init, common_chat_templates_apply_jinja,
//  common_chat_template_direct_apply_impl) for plain-text messages:
//   * an empty template or "chatml" is replaced by llama.cpp's CHATML_TEMPLATE_SRC;
//   * the gpt-oss and Mistral [TOOL_CALLS] source patches are applied;
//   * the template is lexed + parsed once and its caps are probed (jinja::caps_get);
//   * messages become {"role", "content"} (content "" when empty); if the template only
//     supports typed content, content becomes [{"type": "text", "text": content}];
//   * role "developer" -> "system" unless the template contains "<|channel|>";
//   * if caps say no system role, a leading system message is merged into the next one
//     as system + "\n" + next (or dropped when it is the only message);
//   * the context is {messages, bos_token, eos_token, enable_thinking, datetime,
//     date_string, extra_context..., add_generation_prompt (only set when true)},
//     strings from the request are marked as input;
//   * after rendering, a leading bos_token is removed when add_bos, a trailing eos_token
//     when add_eos.
// Specialised llama-server handlers for a few tool-calling formats (gpt-oss, Ministral 3,
// Kimi K2 Thinking, Functionary v3.2, ...) are not mirrored.

#include "jinja/caps.h"
#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "jinja/value.h"
#include "json.h"
#include "llama-chat.h"
#include "llama.h"

#include <cstdio>
#include <ctime>
#include <exception>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

using json = common_json;

namespace {

// verbatim copy of the macro in common/chat.cpp
const char * const CHATML_TEMPLATE_SRC =
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\n' -}}\n"
    "{%- endif -%}";

bool contains(const std::string & s, const std::string & needle) {
    return s.find(needle) != std::string::npos;
}

void replace_all(std::string & s, const std::string & search, const std::string & replace) {
    if (search.empty()) {
        return;
    }
    std::string out;
    size_t pos = 0;
    size_t last = 0;
    while ((pos = s.find(search, last)) != std::string::npos) {
        out.append(s, last, pos - last);
        out += replace;
        last = pos + search.size();
    }
    out.append(s, last, std::string::npos);
    s = std::move(out);
}

bool starts_with(const std::string & s, const std::string & p) {
    return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

bool ends_with(const std::string & s, const std::string & p) {
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string format_time(const char * fmt, std::time_t now) {
    std::tm tm_buf{};
    localtime_r(&now, &tm_buf);
    char buf[64];
    size_t n = std::strftime(buf, sizeof(buf), fmt, &tm_buf);
    return std::string(buf, n);
}

// TEST HOOK (not a llama.cpp option): a job's "date" ("YYYY-MM-DD") fixes "now" to local
// midnight of that day, for strftime_now (jinja::context::current_time) and for the
// datetime/date_string variables. Without it, "now" is the clock, as in llama.cpp.
std::time_t job_now(const std::string & date) {
    if (date.empty()) {
        return std::time(nullptr);
    }
    int y = 0, m = 0, d = 0;
    char extra = 0;
    if (std::sscanf(date.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || date.size() != 10 ||
        m < 1 || m > 12 || d < 1 || d > 31) {
        throw std::runtime_error("'date' must be YYYY-MM-DD, got '" + date + "'");
    }
    std::tm tm_buf{};
    tm_buf.tm_year = y - 1900;
    tm_buf.tm_mon = m - 1;
    tm_buf.tm_mday = d;
    tm_buf.tm_isdst = -1;
    std::time_t t = std::mktime(&tm_buf);
    if (t == static_cast<std::time_t>(-1) || tm_buf.tm_mday != d) {
        throw std::runtime_error("'date' is not a valid day: '" + date + "'");
    }
    return t;
}

// The template-source preprocessing of common_chat_templates_init.
std::string preprocess_source(std::string src) {
    if (src.empty() || src == "chatml") {
        src = CHATML_TEMPLATE_SRC;
    }
    if (contains(src, "<|channel|>") && contains(src, "in message.content or")) {
        replace_all(src,
                    "{%- if \"<|channel|>analysis<|message|>\" in message.content or "
                    "\"<|channel|>final<|message|>\" in message.content %}",
                    "{%- if false %}");
    }
    if (contains(src, "[TOOL_CALLS]") && contains(src, "if (message['content'] is none or")) {
        replace_all(src,
                    "{%- if (message['content'] is none or message['content'] == '' or "
                    "message['content']|length == 0) and (message['tool_calls'] is not defined or "
                    "message['tool_calls'] is none or message['tool_calls']|length == 0) %}",
                    "{%- if false %}");
    }
    return src;
}

// What common_chat_template holds: the parsed program, its source and its caps.
struct compiled_template {
    jinja::program prog;
    std::string src;
    jinja::caps caps;
};

std::unordered_map<std::string, std::shared_ptr<compiled_template>> g_templates;

std::shared_ptr<compiled_template> compile_template(const std::string & raw) {
    auto it = g_templates.find(raw);
    if (it != g_templates.end()) {
        return it->second;
    }
    auto tmpl = std::make_shared<compiled_template>();
    jinja::lexer lexer;
    auto lexer_res = lexer.tokenize(preprocess_source(raw));
    tmpl->prog = jinja::parse_from_tokens(lexer_res);
    tmpl->src = lexer_res.source;
    tmpl->caps = jinja::caps_get(tmpl->prog);
    g_templates.emplace(raw, tmpl);
    return tmpl;
}

std::string get_string(const json & obj, const char * key, const std::string & def = "") {
    if (!obj.contains(key) || obj.at(key).is_null()) {
        return def;
    }
    const json & v = obj.at(key);
    if (!v.is_string()) {
        throw std::runtime_error(std::string("'") + key + "' must be a string");
    }
    return v.get<std::string>();
}

bool get_bool(const json & obj, const char * key, bool def) {
    if (!obj.contains(key) || obj.at(key).is_null()) {
        return def;
    }
    const json & v = obj.at(key);
    if (!v.is_boolean()) {
        throw std::runtime_error(std::string("'") + key + "' must be a boolean");
    }
    return v.get<bool>();
}

struct plain_message {
    std::string role;
    std::string content;
};

std::vector<plain_message> get_messages(const json & job) {
    std::vector<plain_message> out;
    if (!job.contains("messages") || job.at("messages").is_null()) {
        return out;
    }
    const json & msgs = job.at("messages");
    if (!msgs.is_array()) {
        throw std::runtime_error("'messages' must be an array");
    }
    for (size_t i = 0; i < msgs.size(); i++) {
        const json & m = msgs.at(i);
        if (!m.is_object()) {
            throw std::runtime_error("messages[" + std::to_string(i) + "] must be an object");
        }
        out.push_back({get_string(m, "role"), get_string(m, "content")});
    }
    return out;
}

// common_chat_templates_apply_jinja + common_chat_template_direct_apply_impl, text only.
std::string render_jinja(const json & job) {
    auto tmpl = compile_template(get_string(job, "template"));
    const jinja::caps & caps = tmpl->caps;
    const bool workarounds = get_bool(job, "workarounds", true);

    // common_chat_msg::to_json_oaicompat, then messages_inp_normalizer::normalize
    const bool only_string = caps.supports_string_content && !caps.supports_typed_content;
    const bool only_typed = !caps.supports_string_content && caps.supports_typed_content;
    json messages = json::array();
    // "raw_messages": the messages go to the template as given (tool_calls, reasoning_content,
    // tool results), for rendering tool conversations with the engine
    const bool raw = get_bool(job, "raw_messages", false);
    if (raw && job.contains("messages") && job.at("messages").is_array()) {
        messages = job.at("messages");
    }
    for (const auto & m : raw ? std::vector<plain_message>() : get_messages(job)) {
        json jm = json::object();
        jm["role"] = m.role;
        if (workarounds && only_typed) {
            json part = json::object();
            part["type"] = "text";
            part["text"] = m.content;
            json parts = json::array();
            parts.push_back(part);
            jm["content"] = parts;
        } else {
            jm["content"] = m.content;
        }
        messages.push_back(jm);
    }
    (void) only_string;  // string content is what we already have

    if (workarounds) {
        if (!contains(tmpl->src, "<|channel|>")) {  // workaround::map_developer_role_to_system
            for (size_t i = 0; i < messages.size(); i++) {
                if (messages[i]["role"] == "developer") {
                    messages[i]["role"] = "system";
                }
            }
        }
        // workaround::system_message_not_supported
        if (!caps.supports_system_role && !messages.empty() && messages[0]["role"] == "system") {
            if (messages.size() > 1) {
                if (!messages[0]["content"].is_string() || !messages[1]["content"].is_string()) {
                    throw std::runtime_error("cannot merge a typed-content system message");
                }
                messages[1]["content"] = messages[0]["content"].get<std::string>() + "\n" +
                                         messages[1]["content"].get<std::string>();
            }
            messages.erase(static_cast<size_t>(0));
        }
    }

    const std::string bos = get_string(job, "bos_token");
    const std::string eos = get_string(job, "eos_token");

    json inp = json::object();
    inp["messages"] = messages;
    inp["bos_token"] = bos;
    inp["eos_token"] = eos;
    inp["enable_thinking"] = get_bool(job, "enable_thinking", true);
    // common_chat_extra_context()
    const std::time_t now = job_now(get_string(job, "date"));
    inp["datetime"] = format_time("%b %d %Y", now);
    inp["date_string"] = format_time("%d %b %Y", now);
    if (job.contains("extra_context") && job.at("extra_context").is_object()) {
        for (const auto & kv : job.at("extra_context").items()) {
            inp[kv.key()] = kv.value();
        }
    }
    if (get_bool(job, "add_generation_prompt", false)) {
        inp["add_generation_prompt"] = true;
    }

    jinja::context ctx(tmpl->src);
    ctx.current_time = now;  // what strftime_now formats (the clock unless the "date" test hook)
    if (inp.contains("preserve_reasoning") && inp["preserve_reasoning"].is_boolean()) {
        jinja::caps_apply_preserve_reasoning(ctx, inp["preserve_reasoning"].get<bool>());
    }
    if (inp.contains("reasoning_effort") && inp["reasoning_effort"].is_string() &&
        !inp["reasoning_effort"].get<std::string>().empty()) {
        jinja::caps_apply_reasoning_effort(ctx, inp["reasoning_effort"].get<std::string>());
    }
    jinja::global_from_json(ctx, inp, /* mark_input */ true);

    jinja::runtime runtime(ctx);
    const jinja::value results = runtime.execute(tmpl->prog);
    auto parts = jinja::runtime::gather_string_parts(results);
    std::string result = parts->as_string().str();

    if (get_bool(job, "add_bos", false) && starts_with(result, bos)) {
        result = result.substr(bos.size());
    }
    if (get_bool(job, "add_eos", false) && ends_with(result, eos)) {
        result = result.substr(0, result.size() - eos.size());
    }
    return result;
}

// --- built-in (non-Jinja) templates: src/llama-chat.cpp --------------------------------

const std::map<llm_chat_template, std::string> & builtin_names() {
    static const std::map<llm_chat_template, std::string> names = [] {
        std::map<llm_chat_template, std::string> m;
        int32_t n = llama_chat_builtin_templates(nullptr, 0);
        std::vector<const char *> buf(n > 0 ? n : 0);
        llama_chat_builtin_templates(buf.data(), buf.size());
        for (const char * name : buf) {
            m.emplace(llm_chat_template_from_str(name), name);
        }
        m.emplace(LLM_CHAT_TEMPLATE_DOTS1, "dots1");  // detectable, but has no name in llama.cpp
        return m;
    }();
    return names;
}

std::string detect_name(const std::string & tmpl) {
    llm_chat_template t = llm_chat_detect_template(tmpl);
    if (t == LLM_CHAT_TEMPLATE_UNKNOWN) {
        return "";
    }
    auto it = builtin_names().find(t);
    if (it == builtin_names().end()) {
        throw std::runtime_error("detected a built-in template with no known name (enum " +
                                 std::to_string(static_cast<int>(t)) + ")");
    }
    return it->second;
}

// llama_chat_apply_template (src/llama.cpp), without the C buffer dance.
std::string render_builtin(const json & job) {
    const std::string name = get_string(job, "builtin");
    llm_chat_template t = (name == "dots1") ? LLM_CHAT_TEMPLATE_DOTS1 : llm_chat_detect_template(name);
    if (t == LLM_CHAT_TEMPLATE_UNKNOWN) {
        throw std::runtime_error("unknown built-in template (llama_chat_apply_template returns -1)");
    }
    auto msgs = get_messages(job);
    std::vector<llama_chat_message> chat(msgs.size());
    for (size_t i = 0; i < msgs.size(); i++) {
        chat[i].role = msgs[i].role.c_str();
        chat[i].content = msgs[i].content.c_str();
    }
    std::vector<const llama_chat_message *> chat_vec;
    for (auto & m : chat) {
        chat_vec.push_back(&m);
    }
    std::string out;
    int32_t res = llm_chat_apply_template(t, chat_vec, out, get_bool(job, "add_generation_prompt", false));
    if (res < 0) {
        throw std::runtime_error("llm_chat_apply_template returned " + std::to_string(res));
    }
    return out;
}

// --- job dispatch ------------------------------------------------------------------------

bool valid_utf8(const std::string & s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

json output_result(const std::string & text) {
    json r = json::object();
    if (valid_utf8(text)) {
        r["output"] = text;
    } else {
        // the engine slices strings by bytes; such an output cannot be a str in Python
        r["error"] = "rendered output is not valid UTF-8 (llama.cpp's Jinja engine slices and measures strings in bytes)";
        r["invalid_utf8"] = true;
        r["output_lossy"] = text;  // dumped with U+FFFD replacements
    }
    return r;
}

json run_job(const json & job) {
    if (!job.is_object()) {
        throw std::runtime_error("a job must be a JSON object");
    }
    if (job.contains("template")) {
        return output_result(render_jinja(job));
    }
    if (job.contains("builtin")) {
        return output_result(render_builtin(job));
    }
    if (job.contains("detect")) {
        json r = json::object();
        r["name"] = detect_name(get_string(job, "detect"));
        return r;
    }
    if (job.contains("caps")) {
        auto tmpl = compile_template(get_string(job, "caps"));
        json caps = json::object();
        for (const auto & kv : tmpl->caps.to_map()) {
            caps[kv.first] = kv.second;
        }
        json r = json::object();
        r["caps"] = caps;
        return r;
    }
    if (job.contains("list_builtins")) {
        json names = json::array();
        int32_t n = llama_chat_builtin_templates(nullptr, 0);
        std::vector<const char *> buf(n > 0 ? n : 0);
        llama_chat_builtin_templates(buf.data(), buf.size());
        for (const char * name : buf) {
            names.push_back(std::string(name));
        }
        json r = json::object();
        r["names"] = names;
        return r;
    }
    throw std::runtime_error("unknown job kind (expected 'template', 'builtin', 'detect', 'caps' or 'list_builtins')");
}

json error_result(const std::string & message) {
    json r = json::object();
    r["error"] = message;
    return r;
}

}  // namespace

int main() {
    std::ios::sync_with_stdio(false);
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    json jobs;
    try {
        jobs = json::parse(input);
    } catch (const std::exception & e) {
        std::fprintf(stderr, "tmplc llama.cpp driver: cannot parse the jobs JSON: %s\n", e.what());
        return 2;
    }
    if (!jobs.is_array()) {
        std::fprintf(stderr, "tmplc llama.cpp driver: the input must be a JSON array of jobs\n");
        return 2;
    }
    std::fputs("[\n", stdout);
    std::fflush(stdout);
    const size_t n = jobs.size();
    for (size_t i = 0; i < n; i++) {
        json result;
        try {
            result = run_job(jobs.at(i));
        } catch (const std::exception & e) {
            result = error_result(e.what());
        } catch (...) {
            result = error_result("unknown C++ exception");
        }
        std::string line = result.dump_safe();
        line += (i + 1 < n) ? ",\n" : "\n";
        std::fputs(line.c_str(), stdout);
        std::fflush(stdout);
    }
    std::fputs("]\n", stdout);
    std::fflush(stdout);
    return 0;
}
