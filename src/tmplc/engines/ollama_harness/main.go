// Command tmplcharness renders Ollama Modelfile TEMPLATEs the way Ollama does.
//
// It is an independent re-implementation (standard library only, Go 1.19
// compatible) of the behaviour of Ollama's template package, written after
// reading:
//
//   - github.com/ollama/ollama template/template.go at commit
//     6bba484f1a8a68e862665604ea6396771807b4a7 ("lint fixes (#17897)",
//     2026-08-20; unchanged in the v0.33.0-rc2 snapshot fb307609), i.e. the
//     version with convertMessagesForTemplate / ThinkLevel / Vars() errors;
//   - server/routes.go ChatHandler (Modelfile SYSTEM prepending) and
//     server/prompt.go renderPrompt (what Values the server passes);
//   - api/types.go (Message.UnmarshalJSON lower-cases the role,
//     ThinkValue.Bool/String).
//
// Protocol: stdin is a JSON array of jobs, stdout a JSON array of results,
// one per job, in order. A job is
//
//	{"template": str, "messages": [{"role", "content", "thinking"?,
//	  "tool_calls"?, "tool_name"?, "tool_call_id"?, "images"?}...],
//	 "system": str?, "think": bool|"low"|"medium"|"high"|"max"|null,
//	 "prompt": str?, "suffix": str?, "date": "YYYY-MM-DD"?}
//
// ("date" is a test hook, not an Ollama input: it fixes the day that
// currentDate/yesterdayDate see; without it they read the clock, as in Ollama.)
//
// and a result is {"output": str} or {"error": str}. A parse error, an
// execution error or a panic in one job never affects the other jobs. Jobs
// are rendered concurrently (one worker per CPU) and a template shared by
// several jobs is parsed once; neither changes any output.
//
// Known differences from a live Ollama: error texts name this package's
// types (main.templateMessage, not template.templateMessage); no tools can
// be passed (.Tools is always nil); no server-side image tagging, think-tag
// filtering, truncation or Modelfile MESSAGE history; an empty TEMPLATE is
// rendered as given (the server would use its "{{ .Prompt }}" default); and
// constructs newer than the Go compiling this file (range over int, ...)
// are parse errors here even if Ollama's newer Go accepts them.
//
// Behaviour reproduced (see the functions below for details):
//
//  1. Parse: text/template, Option("missingkey=zero"), Ollama's FuncMap
//     (json, currentDate, yesterdayDate, toTypeScriptType). If neither
//     "messages" nor "response" is among the lower-cased identifiers of the
//     template, a {{ .Response }} action is appended to the root. A
//     {{ template "x" }} without a pipe is rejected ("undefined template
//     specified").
//  2. Server side (routes.go ChatHandler): the Modelfile SYSTEM is prepended
//     as a system message iff the request has messages, the first request
//     message's role is not "system", and SYSTEM is non-empty.
//  3. collate: consecutive messages with the same role are merged with
//     "\n\n" (tool messages never are); .System is every system message's
//     content joined with "\n\n"; system messages stay in .Messages.
//  4. Mode: FIM when prompt and suffix are both non-empty; messages mode when
//     "messages" is an identifier of the template; legacy mode otherwise
//     (per-turn execution and truncation after the first {{ .Response }},
//     the final execution on a bare template without the FuncMap).
//  5. Messages mode data: {System, Messages, Tools (nil), Response "",
//     Think, ThinkLevel, IsThinkSet}. There is no generation-prompt flag:
//     the template decides (e.g. with $last), and a trailing assistant
//     message is just rendered by the template like any other message.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"text/template/parse"
	"time"
)

// ---------------------------------------------------------------------------
// Input / output

type jobToolCallFunction struct {
	Index     int            `json:"index"`
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

type jobToolCall struct {
	ID       string              `json:"id"`
	Function jobToolCallFunction `json:"function"`
}

// imageData mirrors api.ImageData ([]byte, base64 in JSON).
type imageData []byte

// message mirrors api.Message.
type message struct {
	Role       string        `json:"role"`
	Content    string        `json:"content"`
	Thinking   string        `json:"thinking"`
	Images     []imageData   `json:"images"`
	ToolCalls  []jobToolCall `json:"tool_calls"`
	ToolName   string        `json:"tool_name"`
	ToolCallID string        `json:"tool_call_id"`
}

type job struct {
	Template string          `json:"template"`
	Messages []message       `json:"messages"`
	System   string          `json:"system"`
	Think    json.RawMessage `json:"think"`
	Prompt   string          `json:"prompt"`
	Suffix   string          `json:"suffix"`
	Date     string          `json:"date"`
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

// ---------------------------------------------------------------------------
// Template-side types (what the template sees in messages mode).

// templateArgs prints as compact JSON (sorted keys, HTML-escaped), "{}" when nil.
type templateArgs map[string]any

func (a templateArgs) String() string {
	if a == nil {
		return "{}"
	}
	b, _ := json.Marshal(a)
	return string(b)
}

type templateToolCallFunction struct {
	Index     int
	Name      string
	Arguments templateArgs
}

type templateToolCall struct {
	ID       string
	Function templateToolCallFunction
}

type templateMessage struct {
	Role       string
	Content    string
	Thinking   string
	Images     []imageData
	ToolCalls  []templateToolCall
	ToolName   string
	ToolCallID string
}

// templateTool is a placeholder: this harness takes no tools, so .Tools is
// always a nil templateTools, which is falsy in {{ if }} and prints "null".
type templateTool struct{}

type templateTools []templateTool

func (t templateTools) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// ---------------------------------------------------------------------------
// Functions

// makeFuncs returns Ollama's FuncMap. currentDate and yesterdayDate are
// Ollama's: they ignore their arguments and format time.Now() (read at each
// call, local time) as "2006-01-02". TEST HOOK: a job's "date" ("YYYY-MM-DD";
// Ollama has no such input) fixes what "now" is for both, so that tests can
// compare with a reference rendered for a known date; without it they read
// the clock, exactly as Ollama does. A "date" that does not parse is an
// error of the job.
func makeFuncs(date string) (template.FuncMap, error) {
	now := time.Now
	if date != "" {
		d, err := time.ParseInLocation("2006-01-02", date, time.Local)
		if err != nil {
			return nil, fmt.Errorf("bad job: \"date\" must be YYYY-MM-DD: %v", err)
		}
		now = func() time.Time { return d }
	}
	return template.FuncMap{
		"json": func(v any) string {
			b, _ := json.Marshal(v)
			return string(b)
		},
		// The format argument is accepted and ignored, as in Ollama.
		"currentDate": func(args ...string) string {
			return now().Format("2006-01-02")
		},
		"yesterdayDate": func(args ...string) string {
			return now().AddDate(0, 0, -1).Format("2006-01-02")
		},
		// Ollama converts an api.ToolProperty; this harness has no tools, so
		// every value is something else, for which Ollama returns "any".
		"toTypeScriptType": func(v any) string {
			return "any"
		},
	}, nil
}

// ---------------------------------------------------------------------------
// Parsing

// identifiers collects field and variable identifiers, the way Ollama's
// Identifiers does (including its errors for nil pipes).
func identifiers(n parse.Node) ([]string, error) {
	var out []string
	var visit func(parse.Node) error
	visitPipe := func(p *parse.PipeNode) error {
		for _, c := range p.Cmds {
			for _, a := range c.Args {
				if err := visit(a); err != nil {
					return err
				}
			}
		}
		return nil
	}
	visitBranch := func(b *parse.BranchNode) error {
		if b.Pipe == nil {
			return fmt.Errorf("undefined branch")
		}
		if err := visitPipe(b.Pipe); err != nil {
			return err
		}
		if b.List != nil {
			if err := visit(b.List); err != nil {
				return err
			}
		}
		if b.ElseList != nil {
			if err := visit(b.ElseList); err != nil {
				return err
			}
		}
		return nil
	}
	visit = func(n parse.Node) error {
		switch x := n.(type) {
		case *parse.ListNode:
			for _, c := range x.Nodes {
				if err := visit(c); err != nil {
					return err
				}
			}
		case *parse.TemplateNode:
			if x.Pipe == nil {
				return fmt.Errorf("undefined template specified")
			}
			return visitPipe(x.Pipe)
		case *parse.ActionNode:
			if x.Pipe == nil {
				return fmt.Errorf("undefined action in template")
			}
			return visitPipe(x.Pipe)
		case *parse.IfNode:
			return visitBranch(&x.BranchNode)
		case *parse.RangeNode:
			return visitBranch(&x.BranchNode)
		case *parse.WithNode:
			return visitBranch(&x.BranchNode)
		case *parse.PipeNode:
			return visitPipe(x)
		case *parse.FieldNode:
			out = append(out, x.Ident...)
		case *parse.VariableNode:
			out = append(out, x.Ident...)
		}
		return nil
	}
	err := visit(n)
	return out, err
}

type parsed struct {
	tmpl *template.Template
	vars map[string]bool // lower-cased identifiers of every associated template
}

func parseTemplate(src string, funcs template.FuncMap) (*parsed, error) {
	t, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, err
	}
	vars := map[string]bool{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		for _, n := range tt.Root.Nodes {
			ids, err := identifiers(n)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				vars[strings.ToLower(id)] = true
			}
		}
	}
	if !vars["messages"] && !vars["response"] {
		t.Tree.Root.Nodes = append(t.Tree.Root.Nodes, responseAction())
	}
	return &parsed{tmpl: t, vars: vars}, nil
}

type parseKey struct{ src, date string }

type parseResult struct {
	p   *parsed
	err error
}

// parseCache shares one parse between the jobs of a batch that use the same
// template (and date). Safe because nothing mutates a parsed template after
// parseTemplate: execution does not, and the legacy truncation works on a copy.
// Concurrent Execute calls on one template are safe in text/template.
var (
	parseMu    sync.Mutex
	parseCache = map[parseKey]parseResult{}
)

func cachedParse(src, date string) (*parsed, error) {
	k := parseKey{src, date}
	parseMu.Lock()
	defer parseMu.Unlock()
	if r, ok := parseCache[k]; ok {
		return r.p, r.err
	}
	funcs, err := makeFuncs(date)
	var p *parsed
	if err == nil {
		p, err = parseTemplate(src, funcs)
	}
	parseCache[k] = parseResult{p, err}
	return p, err
}

// responseAction builds the {{ .Response }} action Ollama appends.
func responseAction() parse.Node {
	return &parse.ActionNode{
		NodeType: parse.NodeAction,
		Pipe: &parse.PipeNode{
			NodeType: parse.NodePipe,
			Cmds: []*parse.CommandNode{{
				NodeType: parse.NodeCommand,
				Args: []parse.Node{&parse.FieldNode{
					NodeType: parse.NodeField,
					Ident:    []string{"Response"},
				}},
			}},
		},
	}
}

// ---------------------------------------------------------------------------
// Messages

// collate merges consecutive same-role messages (not "tool") with "\n\n"
// and returns all system contents joined with "\n\n". Like Ollama, the
// merge writes through pointers into msgs.
func collate(msgs []message) (string, []*message) {
	var systems []string
	var out []*message
	for i := range msgs {
		m := &msgs[i]
		if m.Role == "system" {
			systems = append(systems, m.Content)
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role && m.Role != "tool" {
			out[n-1].Content += "\n\n" + m.Content
			continue
		}
		out = append(out, m)
	}
	return strings.Join(systems, "\n\n"), out
}

func toTemplateMessages(msgs []*message) []*templateMessage {
	if msgs == nil {
		return nil
	}
	out := make([]*templateMessage, len(msgs))
	for i, m := range msgs {
		var calls []templateToolCall
		for _, c := range m.ToolCalls {
			calls = append(calls, templateToolCall{
				ID: c.ID,
				Function: templateToolCallFunction{
					Index:     c.Function.Index,
					Name:      c.Function.Name,
					Arguments: templateArgs(c.Function.Arguments),
				},
			})
		}
		out[i] = &templateMessage{
			Role:       m.Role,
			Content:    m.Content,
			Thinking:   m.Thinking,
			Images:     m.Images,
			ToolCalls:  calls,
			ToolName:   m.ToolName,
			ToolCallID: m.ToolCallID,
		}
	}
	return out
}

// thinkValues returns (Think, ThinkLevel, IsThinkSet) like renderPrompt does
// from an api.ThinkValue: absent/null -> (false, "", false); a bool b ->
// (b, "medium" if b else "", true); a string s -> (s is a known level, s, true).
func thinkValues(raw json.RawMessage) (bool, string, bool) {
	if len(raw) == 0 {
		return false, "", false
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil || v == nil {
		return false, "", false
	}
	switch x := v.(type) {
	case bool:
		if x {
			return true, "medium", true
		}
		return false, "", true
	case string:
		ok := x == "high" || x == "medium" || x == "low" || x == "max"
		return ok, x, true
	}
	return false, "", true
}

// ---------------------------------------------------------------------------
// Legacy-mode truncation

// cutAfterResponse removes every node that comes after the first FieldNode
// whose identifiers contain "Response" (in walk order), keeping that field.
// It mirrors Ollama's deleteNode, including its failure modes: removing a
// whole else-list or branch list panics on a nil type assertion there, and
// here too (the caller turns the panic into an error result).
func cutAfterResponse(root *parse.ListNode) *parse.ListNode {
	cut := false
	drop := func(n parse.Node) bool {
		if f, ok := n.(*parse.FieldNode); ok {
			for _, id := range f.Ident {
				if id == "Response" {
					cut = true
					return false
				}
			}
		}
		return cut
	}
	var walk func(parse.Node) parse.Node
	walk = func(n parse.Node) parse.Node {
		if drop(n) {
			return nil
		}
		switch x := n.(type) {
		case *parse.ListNode:
			var kept []parse.Node
			for _, c := range x.Nodes {
				if k := walk(c); k != nil {
					kept = append(kept, k)
				}
			}
			x.Nodes = kept
			return x
		case *parse.IfNode:
			x.BranchNode = *walk(&x.BranchNode).(*parse.BranchNode)
		case *parse.RangeNode:
			x.BranchNode = *walk(&x.BranchNode).(*parse.BranchNode)
		case *parse.WithNode:
			x.BranchNode = *walk(&x.BranchNode).(*parse.BranchNode)
		case *parse.BranchNode:
			x.List = walk(x.List).(*parse.ListNode)
			if x.ElseList != nil {
				x.ElseList = walk(x.ElseList).(*parse.ListNode)
			}
		case *parse.ActionNode:
			p := walk(x.Pipe)
			if p == nil {
				return nil
			}
			x.Pipe = p.(*parse.PipeNode)
		case *parse.PipeNode:
			var cmds []*parse.CommandNode
			for _, c := range x.Cmds {
				var args []parse.Node
				for _, a := range c.Args {
					if k := walk(a); k != nil {
						args = append(args, k)
					}
				}
				if len(args) == 0 {
					return nil
				}
				c.Args = args
				cmds = append(cmds, c)
			}
			if len(cmds) == 0 {
				return nil
			}
			x.Cmds = cmds
		}
		return n
	}
	return walk(root.CopyList()).(*parse.ListNode)
}

// ---------------------------------------------------------------------------
// Rendering

// ---------------------------------------------------------------------------
// Limits (untrusted templates). The Python side bounds the whole process (wall
// time, address space, stdout size, process group killed); these make the
// common bombs end early with a clear message instead of a kill:
//
//   - TMPLC_HARNESS_MAX_OUTPUT: bytes one render may write (default 1 MiB);
//     a render past it fails with outputLimitMsg, which the Python side turns
//     into a refusal of the whole batch;
//   - TMPLC_HARNESS_MAX_STACK: bytes of goroutine stack (default 64 MiB), so a
//     deep {{ template }} recursion dies quickly (a fatal error, not a panic).

const outputLimitMsg = "tmplc-harness: output limit"

var maxOutput = envInt("TMPLC_HARNESS_MAX_OUTPUT", 1<<20)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// limitedBuilder is a strings.Builder that refuses to grow past max bytes.
type limitedBuilder struct {
	b   strings.Builder
	max int
}

func (l *limitedBuilder) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.max {
		return 0, fmt.Errorf("%s of %d bytes per render reached", outputLimitMsg, l.max)
	}
	return l.b.Write(p)
}

func (l *limitedBuilder) String() string { return l.b.String() }

func render(j *job) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()

	p, err := cachedParse(j.Template, j.Date)
	if err != nil {
		return "", err
	}

	// routes.go ChatHandler: the Modelfile SYSTEM goes first unless the
	// request's first message is a system message.
	msgs := make([]message, 0, len(j.Messages)+1)
	if len(j.Messages) > 0 && strings.ToLower(j.Messages[0].Role) != "system" && j.System != "" {
		msgs = append(msgs, message{Role: "system", Content: j.System})
	}
	for _, m := range j.Messages {
		m.Role = strings.ToLower(m.Role) // api.Message.UnmarshalJSON
		msgs = append(msgs, m)
	}
	if len(j.Messages) == 0 {
		msgs = nil
	}

	think, level, thinkSet := thinkValues(j.Think)
	system, collated := collate(msgs)
	b := &limitedBuilder{max: maxOutput}

	switch {
	case j.Prompt != "" && j.Suffix != "":
		err = p.tmpl.Execute(b, map[string]any{
			"Prompt":     j.Prompt,
			"Suffix":     j.Suffix,
			"Response":   "",
			"Think":      think,
			"ThinkLevel": level,
			"IsThinkSet": thinkSet,
		})
		return b.String(), err
	case p.vars["messages"]:
		err = p.tmpl.Execute(b, map[string]any{
			"System":     system,
			"Messages":   toTemplateMessages(collated),
			"Tools":      templateTools(nil),
			"Response":   "",
			"Think":      think,
			"ThinkLevel": level,
			"IsThinkSet": thinkSet,
		})
		return b.String(), err
	}

	// Legacy mode: one execution per finished turn, then the truncated
	// template for the last turn. The joined system from collate is unused.
	var sys, prompt, response string
	flush := func() error {
		e := p.tmpl.Execute(b, map[string]any{
			"System":     sys,
			"Prompt":     prompt,
			"Response":   response,
			"Think":      think,
			"ThinkLevel": level,
			"IsThinkSet": thinkSet,
		})
		sys, prompt, response = "", "", ""
		return e
	}
	for _, m := range collated {
		switch m.Role {
		case "system":
			if prompt != "" || response != "" {
				if e := flush(); e != nil {
					return "", e
				}
			}
			sys = m.Content
		case "user":
			if response != "" {
				if e := flush(); e != nil {
					return "", e
				}
			}
			prompt = m.Content
		case "assistant":
			response = m.Content
		}
	}
	root := cutAfterResponse(p.tmpl.Tree.Root)
	final, err := template.New("").AddParseTree("", &parse.Tree{Root: root})
	if err != nil {
		return "", err
	}
	if err := final.Execute(b, map[string]any{
		"System":     sys,
		"Prompt":     prompt,
		"Response":   response,
		"Think":      think,
		"ThinkLevel": level,
		"IsThinkSet": thinkSet,
	}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// ---------------------------------------------------------------------------

func runJob(raw json.RawMessage) result {
	var j job
	if err := json.Unmarshal(raw, &j); err != nil {
		s := "bad job: " + err.Error()
		return result{Error: &s}
	}
	out, err := render(&j)
	if err != nil {
		s := err.Error()
		return result{Error: &s}
	}
	return result{Output: &out}
}

func main() {
	debug.SetMaxStack(envInt("TMPLC_HARNESS_MAX_STACK", 64<<20))
	in, err := io.ReadAll(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintln(os.Stderr, "read stdin:", err)
		os.Exit(2)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(in, &raw); err != nil {
		fmt.Fprintln(os.Stderr, "stdin is not a JSON array of jobs:", err)
		os.Exit(2)
	}
	results := make([]result, len(raw))
	// Jobs are independent; render them on all CPUs. Each worker takes the
	// next index, so results stay in input order.
	var next int64 = -1
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	if workers > len(raw) {
		workers = len(raw)
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= len(raw) {
					return
				}
				results[i] = runJob(raw[i])
			}
		}()
	}
	wg.Wait()
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "write stdout:", err)
		os.Exit(2)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "write stdout:", err)
		os.Exit(2)
	}
}
