//go:build js && wasm

package jsapi

import (
	"context"
	"fmt"
	"strings"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/errs"
)

// Generation is what generate resolves to: the whole text, the token ids, and the timing.
type Generation struct {
	Text   string  `json:"text"`
	Tokens []int32 `json:"tokens"`
	MS     float64 `json:"ms"`
}

// generate(prompt, {maxTokens, temperature, topK, topP, seed, context, cache, signal, onToken})
// → Promise<Generation>, also async-iterable over the tokens (tokenStream); onToken gets each
// {id, text} as it is sampled.
func generateMethod(m *engine.Model) func(args []js.Value) any {
	return func(args []js.Value) any {
		if len(args) < 1 || args[0].Type() != js.TypeString {
			return reject("generate(prompt)", "", fmt.Errorf("generate(prompt, options): prompt must be a string: %w", errs.ErrBadArgument))
		}
		prompt := args[0].String()
		var opt engine.GenerateOptions
		var onToken, signal js.Value
		if len(args) > 1 && args[1].Type() == js.TypeObject {
			o := args[1]
			opt.MaxTokens, opt.TopK, opt.Context = optInt(o, "maxTokens"), optInt(o, "topK"), optInt(o, "context")
			opt.Temperature, opt.TopP = float32(optFloat(o, "temperature")), float32(optFloat(o, "topP"))
			opt.Seed = uint64(optFloat(o, "seed"))
			opt.Cache = optString(o, "cache")
			if f := o.Get("onToken"); f.Type() == js.TypeFunction {
				onToken = f
			}
			if signal = o.Get("signal"); signal.Truthy() && !signal.InstanceOf(jsAbortSignal) {
				return reject("generate(prompt, options)", "", fmt.Errorf("generate: signal must be an AbortSignal: %w", errs.ErrBadArgument))
			}
		}
		ctx, stop := signalContext(signal)
		ctx, closed := context.WithCancelCause(ctx)
		ts := newTokenStream(func() { closed(fmt.Errorf("the token iterator was closed: %w", errs.ErrAborted)) })
		return ts.attach(promise("generate(prompt)", "", func() (any, error) {
			defer stop()
			defer closed(nil)
			t0 := time.Now()
			var g Generation
			var text strings.Builder
			err := m.Generate(ctx, prompt, opt, func(t engine.Token) error {
				g.Tokens = append(g.Tokens, t.ID)
				text.WriteString(t.Text)
				tok := toJS(t)
				if onToken.Truthy() {
					callSafe(onToken, tok)
				}
				ts.push(tok)
				yieldToPage()
				return nil
			})
			if err != nil {
				return nil, err
			}
			g.Text, g.MS = text.String(), ms(time.Since(t0))
			return toJS(g), nil
		}))
	}
}

func optFloat(o js.Value, key string) float64 {
	if v := o.Get(key); v.Type() == js.TypeNumber {
		return v.Float()
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
