//! Evaluation of checked expressions against a layer: constraint verdicts,
//! per-call cycles and scratch bytes. Type errors cannot happen here (sema
//! rejected them); value errors (division by zero, runaway sums) are
//! reported, never panicked on.

use crate::expr::{BinOp, Builtin, EvalError, Expr, UnOp, Value, MAX_CALL_DEPTH, MAX_SUM_ITERATIONS};
use crate::layer::Layer;
use crate::model::{HwModel, Offload, Unit};

/// Whether an offload rule accepts a layer, and if not, which part of its
/// condition failed (the first false conjunct, printed as in the file).
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Accepted,
    Rejected { constraint: String },
}

struct Ctx<'a> {
    model: &'a HwModel,
    layer: &'a Layer,
    /// Bound names, borrowed from the expressions (no allocation per call
    /// or per sum step: the schedule search evaluates cost expressions for
    /// every candidate tile).
    locals: Vec<(&'a str, Value)>,
    depth: usize,
    /// Evaluation steps left: nested sums could otherwise multiply their
    /// bounds into hours of work.
    budget: u64,
}

/// Steps one evaluation may take (each sub-expression visit is a step).
pub const MAX_EVAL_STEPS: u64 = 20_000_000;

fn err<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(msg.into()))
}

fn as_num(v: Value) -> Result<f64, EvalError> {
    match v {
        Value::Num(n) => Ok(n),
        other => err(format!("expected a number, found {other}")),
    }
}

fn as_bool(v: Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => err(format!("expected a condition, found {other}")),
    }
}

impl<'a> Ctx<'a> {
    fn eval(&mut self, e: &'a Expr) -> Result<Value, EvalError> {
        if self.budget == 0 {
            return err(format!("evaluation takes more than {MAX_EVAL_STEPS} steps"));
        }
        self.budget -= 1;
        Ok(match e {
            Expr::Num(n) => Value::Num(*n),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Pair(a, b) => Value::Pair(*a, *b),
            Expr::Attr(name) => match self.layer.attr(name) {
                Some(v) => v,
                None => return err(format!("unknown attribute `{name}`")),
            },
            Expr::Local(name) => match self.locals.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => *v,
                None => return err(format!("unbound name `{name}`")),
            },
            Expr::Unary(UnOp::Neg, x) => Value::Num(-as_num(self.eval(x)?)?),
            Expr::Unary(UnOp::Not, x) => Value::Bool(!as_bool(self.eval(x)?)?),
            Expr::Binary(op, a, b) => self.binary(*op, a, b)?,
            Expr::Builtin(f, args) => {
                let mut xs = Vec::with_capacity(args.len());
                for a in args {
                    xs.push(as_num(self.eval(a)?)?);
                }
                Value::Num(builtin(*f, &xs)?)
            }
            Expr::Call(name, args) => {
                let Some(def) = self.model.def(name) else {
                    return err(format!("unknown function `{name}`"));
                };
                if self.depth >= MAX_CALL_DEPTH {
                    return err(format!("calls nested deeper than {MAX_CALL_DEPTH} at `{name}`"));
                }
                let mut bound = Vec::with_capacity(args.len());
                for (p, a) in def.params.iter().zip(args) {
                    bound.push((p.as_str(), self.eval(a)?));
                }
                // A def sees only its own parameters, not the caller's locals.
                let saved = std::mem::replace(&mut self.locals, bound);
                self.depth += 1;
                let r = self.eval(&def.body);
                self.depth -= 1;
                self.locals = saved;
                r?
            }
            Expr::If(c, a, b) => {
                if as_bool(self.eval(c)?)? {
                    self.eval(a)?
                } else {
                    self.eval(b)?
                }
            }
            Expr::Sum(var, lo, hi, body) => {
                let lo = as_num(self.eval(lo)?)?.ceil();
                let hi = as_num(self.eval(hi)?)?.ceil();
                if !lo.is_finite() || !hi.is_finite() {
                    return err("sum bounds are not finite");
                }
                if hi - lo > MAX_SUM_ITERATIONS as f64 {
                    return err(format!("sum over more than {MAX_SUM_ITERATIONS} values"));
                }
                let mut total = 0.0;
                let mut i = lo;
                while i < hi {
                    self.locals.push((var.as_str(), Value::Num(i)));
                    let v = self.eval(body);
                    self.locals.pop();
                    total += as_num(v?)?;
                    i += 1.0;
                }
                Value::Num(total)
            }
            Expr::In(x, set) => {
                let x = self.eval(x)?;
                let mut found = false;
                for s in set {
                    if self.eval(s)? == x {
                        found = true;
                        break;
                    }
                }
                Value::Bool(found)
            }
        })
    }

    fn binary(&mut self, op: BinOp, a: &'a Expr, b: &'a Expr) -> Result<Value, EvalError> {
        // Short-circuit so that `K > 0 and C / K > 2` is safe.
        match op {
            BinOp::And => {
                return Ok(Value::Bool(as_bool(self.eval(a)?)? && as_bool(self.eval(b)?)?));
            }
            BinOp::Or => {
                return Ok(Value::Bool(as_bool(self.eval(a)?)? || as_bool(self.eval(b)?)?));
            }
            _ => {}
        }
        let va = self.eval(a)?;
        let vb = self.eval(b)?;
        match op {
            BinOp::Eq => return Ok(Value::Bool(va == vb)),
            BinOp::Ne => return Ok(Value::Bool(va != vb)),
            _ => {}
        }
        let (x, y) = (as_num(va)?, as_num(vb)?);
        Ok(match op {
            BinOp::Add => Value::Num(x + y),
            BinOp::Sub => Value::Num(x - y),
            BinOp::Mul => Value::Num(x * y),
            BinOp::Div => {
                if y == 0.0 {
                    return err("division by zero");
                }
                Value::Num(x / y)
            }
            BinOp::Mod => Value::Num(modulo(x, y)?),
            BinOp::Lt => Value::Bool(x < y),
            BinOp::Le => Value::Bool(x <= y),
            BinOp::Gt => Value::Bool(x > y),
            BinOp::Ge => Value::Bool(x >= y),
            BinOp::Eq | BinOp::Ne | BinOp::And | BinOp::Or => unreachable!("handled above"),
        })
    }
}

fn modulo(x: f64, y: f64) -> Result<f64, EvalError> {
    if y == 0.0 {
        return err("modulo by zero");
    }
    // Floor semantics, like `div`: the result has the sign of the divisor.
    Ok(x - y * (x / y).floor())
}

fn builtin(f: Builtin, xs: &[f64]) -> Result<f64, EvalError> {
    Ok(match f {
        Builtin::Ceil => xs[0].ceil(),
        Builtin::Floor => xs[0].floor(),
        Builtin::Abs => xs[0].abs(),
        Builtin::Log2 => {
            if xs[0] <= 0.0 {
                return err("log2 of a value that is not positive");
            }
            xs[0].log2()
        }
        Builtin::IntDiv => {
            if xs[1] == 0.0 {
                return err("division by zero");
            }
            (xs[0] / xs[1]).floor()
        }
        Builtin::Mod => modulo(xs[0], xs[1])?,
        Builtin::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
        Builtin::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// The top-level conjuncts of a condition: `a and (b and c)` gives a, b, c.
fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Binary(BinOp::And, a, b) => {
            let mut v = conjuncts(a);
            v.extend(conjuncts(b));
            v
        }
        other => vec![other],
    }
}

impl HwModel {
    /// Evaluates an expression of this model against a layer.
    pub fn eval(&self, expr: &Expr, layer: &Layer) -> Result<Value, EvalError> {
        Ctx { model: self, layer, locals: Vec::new(), depth: 0, budget: MAX_EVAL_STEPS }.eval(expr)
    }

    /// Evaluates an expression that sema typed as a number.
    pub fn eval_num(&self, expr: &Expr, layer: &Layer) -> Result<f64, EvalError> {
        as_num(self.eval(expr, layer)?)
    }

    /// Calls the target-level `def` named `name` with numeric arguments.
    pub fn call_def(&self, name: &str, args: &[f64], layer: &Layer) -> Result<f64, EvalError> {
        let call = Expr::Call(name.to_string(), args.iter().map(|a| Expr::Num(*a)).collect());
        match self.def(name) {
            Some(d) if d.params.len() == args.len() => self.eval_num(&call, layer),
            Some(d) => err(format!("`{name}` takes {} arguments, not {}", d.params.len(), args.len())),
            None => err(format!("no def named `{name}`")),
        }
    }

    /// Whether `offload` accepts `layer`; on rejection, the first conjunct
    /// of its `where` condition that is false.
    pub fn check_offload(&self, offload: &Offload, layer: &Layer) -> Result<Verdict, EvalError> {
        let Some(cond) = &offload.condition else {
            return Ok(Verdict::Accepted);
        };
        for c in conjuncts(cond) {
            if !as_bool(self.eval(c, layer)?)? {
                return Ok(Verdict::Rejected { constraint: c.to_string() });
            }
        }
        Ok(Verdict::Accepted)
    }

    /// Whether `tile` (a tile's [`Layer`], as the `cycles` expression sees
    /// it) meets `offload`'s `tile_condition`: `None` when it does (or the
    /// rule states none), else the first failing conjunct.
    pub fn check_tile(&self, offload: &Offload, tile: &Layer) -> Result<Option<String>, EvalError> {
        let Some(cond) = &offload.tile_condition else { return Ok(None) };
        for c in conjuncts(cond) {
            if !as_bool(self.eval(c, tile)?)? {
                return Ok(Some(c.to_string()));
            }
        }
        Ok(None)
    }

    /// Compute cycles of one call of `unit` on `layer` (a tile), from the
    /// unit's `cycles` expression; `None` when the unit gives none.
    pub fn call_cycles(&self, unit: &Unit, layer: &Layer) -> Result<Option<f64>, EvalError> {
        unit.cycles.as_ref().map(|e| self.eval_num(e, layer)).transpose()
    }

    /// Compute cycles of one call of `offload`'s kernel on `layer` (a tile):
    /// the rule's `cycles` clause, else its unit's `cycles`; `None` when
    /// neither gives one (the default model applies).
    pub fn offload_call_cycles(&self, offload: &Offload, layer: &Layer) -> Result<Option<f64>, EvalError> {
        self.offload_cycles(offload).map(|e| self.eval_num(e, layer)).transpose()
    }

    /// Bytes of each scratch buffer `unit` needs for `layer` (a tile).
    pub fn scratch_bytes(&self, unit: &Unit, layer: &Layer) -> Result<Vec<(String, f64)>, EvalError> {
        unit.scratch.iter().map(|s| Ok((s.name.clone(), self.eval_num(&s.bytes, layer)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_with(cycles: &str) -> HwModel {
        let src = format!(
            "target t {{\n clock 1 MHz\n memory M {{ size 1 KiB }}\n unit u {{ host; macs 1/cycle; compute_in M; cycles = {cycles} }}\n def f(x) = x * 2\n}}\n"
        );
        match crate::check(&src, "t.hwm") {
            Ok(m) => m,
            Err(d) => panic!("{d}"),
        }
    }

    fn cycles(src: &str, layer: &Layer) -> Result<f64, EvalError> {
        let m = model_with(src);
        let u = m.unit("u").unwrap();
        m.call_cycles(u, layer).map(|c| c.unwrap())
    }

    #[test]
    fn arithmetic_and_builtins() {
        let l = Layer::conv(40, 16, 8, 8, 3, 3, 1, 1);
        assert_eq!(
            cycles("ceil(K / 32) * 2 + div(7, 2) + mod(-7, 3) + min(5, 2, 9) + max(1, 4)", &l),
            Ok(15.0)
        );
        assert_eq!(cycles("if kernel in {1x1, 3x3} and not depthwise then 1 else 0", &l), Ok(1.0));
        assert_eq!(cycles("sum(i in 0..4, i * i) + f(3)", &l), Ok(20.0));
        assert_eq!(cycles("K % 16 + abs(-2) + log2(8)", &l), Ok(13.0));
    }

    #[test]
    fn offload_cycles_fall_back_to_the_unit() {
        let src = "target t {\n clock 1 MHz\n memory M { size 1 KiB }\n unit u { host; macs 1/cycle; compute_in M; cycles = K }\n unit v { macs 1/cycle; compute_in M }\n pattern p = conv2d\n pattern e = add\n offload e to u call \"a\" cycles = if is_add then C * OY * OX else 0\n offload p to u call \"c\"\n offload p to v call \"d\"\n}\n";
        let m = crate::check(src, "t.hwm").unwrap_or_else(|d| panic!("{d}"));
        let add = Layer::add(16, 2, 3);
        assert_eq!(m.offload_call_cycles(&m.offloads[0], &add), Ok(Some(96.0)));
        assert_eq!(m.offload_call_cycles(&m.offloads[1], &add), Ok(Some(16.0)));
        assert_eq!(m.offload_call_cycles(&m.offloads[2], &add), Ok(None));
        assert_eq!(m.offload_call_cycles(&m.offloads[0], &Layer::pool(16, 2, 2, 2, 2, 2, 0)), Ok(Some(0.0)));
    }

    #[test]
    fn value_errors_are_reported() {
        let l = Layer::dense(10, 10);
        assert!(cycles("K / (C - 10)", &l).is_err());
        assert!(cycles("sum(i in 0..100000000, 1)", &l).is_err());
        assert!(cycles("sum(i in 0..1000000, sum(j in 0..1000000, 1))", &l).is_err());
    }
}
