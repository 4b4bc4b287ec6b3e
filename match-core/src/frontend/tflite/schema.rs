//! Hand-written accessors over the subset of the TFLite flatbuffer schema
//! (`tensorflow/lite/schema/schema.fbs`) the importer reads.
//!
//! Every table is a thin wrapper of a [`flatbuffers::Table`]. Each wrapper
//! implements [`Verifiable`] for exactly the fields its accessors read, so
//! that [`parse_model`] runs the flatbuffers verifier over everything we
//! later touch: after it succeeds, every accessor reads in bounds. The field
//! ids (vtable slots) are those of the public schema; the vtable byte offset
//! of field `i` is `4 + 2 * i`.

use flatbuffers::{
    Follow, ForwardsUOffset, InvalidFlatbuffer, Table, Vector, Verifiable, Verifier, VerifierOptions,
};

/// The vtable byte offset of field id `id`.
const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// Declares a table wrapper with its `Follow` impl.
macro_rules! table {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<'a> {
            tab: Table<'a>,
        }
        impl<'a> Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            #[inline]
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                // SAFETY: forwarded contract of `Follow::follow`: `loc` holds
                // a table (checked by the verifier before any access).
                $name { tab: unsafe { Table::new(buf, loc) } }
            }
        }
    };
}

/// Reads a scalar field (verified by the table's `run_verifier`).
macro_rules! scalar {
    ($fn:ident, $ty:ty, $id:expr, $default:expr) => {
        pub fn $fn(&self) -> $ty {
            // SAFETY: the verifier checked this field as a `$ty` in bounds.
            unsafe { self.tab.get::<$ty>(slot($id), Some($default)) }.unwrap_or($default)
        }
    };
}

/// Reads an offset field (vector, string or table; verified).
macro_rules! offset {
    ($fn:ident, $ty:ty, $id:expr) => {
        pub fn $fn(&self) -> Option<$ty> {
            // SAFETY: the verifier checked this field as a `$ty` in bounds.
            unsafe { self.tab.get::<ForwardsUOffset<$ty>>(slot($id), None) }
        }
    };
}

type Vec32<'a> = Vector<'a, i32>;
type Tables<'a, T> = Vector<'a, ForwardsUOffset<T>>;

table!(
    /// `table Model`: version 0, operator_codes 1, subgraphs 2,
    /// description 3, buffers 4.
    Model
);
impl<'a> Model<'a> {
    scalar!(version, u32, 0, 0);
    offset!(operator_codes, Tables<'a, OperatorCode<'a>>, 1);
    offset!(subgraphs, Tables<'a, SubGraph<'a>>, 2);
    offset!(buffers, Tables<'a, Buffer<'a>>, 4);
}
impl Verifiable for Model<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<u32>("version", slot(0), false)?
            .visit_field::<ForwardsUOffset<Tables<OperatorCode>>>("operator_codes", slot(1), false)?
            .visit_field::<ForwardsUOffset<Tables<SubGraph>>>("subgraphs", slot(2), false)?
            .visit_field::<ForwardsUOffset<Tables<Buffer>>>("buffers", slot(4), false)?
            .finish();
        Ok(())
    }
}

table!(
    /// `table OperatorCode`: deprecated_builtin_code 0 (byte),
    /// custom_code 1, version 2, builtin_code 3 (int).
    OperatorCode
);
impl<'a> OperatorCode<'a> {
    scalar!(deprecated_builtin_code, i8, 0, 0);
    offset!(custom_code, &'a str, 1);
    scalar!(builtin_code, i32, 3, 0);
    /// The operator code, as TFLite resolves it: the larger of the two
    /// fields (old files only set the deprecated byte).
    pub fn code(&self) -> i32 {
        self.builtin_code().max(self.deprecated_builtin_code() as i32)
    }
}
impl Verifiable for OperatorCode<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<i8>("deprecated_builtin_code", slot(0), false)?
            .visit_field::<ForwardsUOffset<&str>>("custom_code", slot(1), false)?
            .visit_field::<i32>("builtin_code", slot(3), false)?
            .finish();
        Ok(())
    }
}

table!(
    /// `table SubGraph`: tensors 0, inputs 1, outputs 2, operators 3, name 4.
    SubGraph
);
impl<'a> SubGraph<'a> {
    offset!(tensors, Tables<'a, Tensor<'a>>, 0);
    offset!(inputs, Vec32<'a>, 1);
    offset!(outputs, Vec32<'a>, 2);
    offset!(operators, Tables<'a, Operator<'a>>, 3);
}
impl Verifiable for SubGraph<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Tables<Tensor>>>("tensors", slot(0), false)?
            .visit_field::<ForwardsUOffset<Vec32>>("inputs", slot(1), false)?
            .visit_field::<ForwardsUOffset<Vec32>>("outputs", slot(2), false)?
            .visit_field::<ForwardsUOffset<Tables<Operator>>>("operators", slot(3), false)?
            .visit_field::<ForwardsUOffset<&str>>("name", slot(4), false)?
            .finish();
        Ok(())
    }
}

table!(
    /// `table Buffer`: data 0 (`[ubyte]`), offset 1 and size 2 (`ulong`,
    /// data stored after the flatbuffer in files over 2 GB).
    Buffer
);
impl<'a> Buffer<'a> {
    offset!(data, Vector<'a, u8>, 0);
    scalar!(offset, u64, 1, 0);
    scalar!(size, u64, 2, 0);
}
impl Verifiable for Buffer<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("data", slot(0), false)?
            .visit_field::<u64>("offset", slot(1), false)?
            .visit_field::<u64>("size", slot(2), false)?
            .finish();
        Ok(())
    }
}

table!(
    /// `table Tensor`: shape 0, type 1 (byte), buffer 2 (uint), name 3,
    /// quantization 4, is_variable 5, sparsity 6.
    Tensor
);
impl<'a> Tensor<'a> {
    offset!(shape, Vec32<'a>, 0);
    scalar!(tensor_type, i8, 1, 0);
    scalar!(buffer, u32, 2, 0);
    offset!(name, &'a str, 3);
    offset!(quantization, QuantizationParameters<'a>, 4);
    scalar!(is_variable, bool, 5, false);
    /// Whether the tensor has sparsity parameters (not supported).
    pub fn is_sparse(&self) -> bool {
        self.tab.vtable().get(slot(6)) != 0
    }
}
impl Verifiable for Tensor<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vec32>>("shape", slot(0), false)?
            .visit_field::<i8>("type", slot(1), false)?
            .visit_field::<u32>("buffer", slot(2), false)?
            .visit_field::<ForwardsUOffset<&str>>("name", slot(3), false)?
            .visit_field::<ForwardsUOffset<QuantizationParameters>>("quantization", slot(4), false)?
            .visit_field::<bool>("is_variable", slot(5), false)?
            .finish();
        Ok(())
    }
}

table!(
    /// `table QuantizationParameters`: min 0, max 1, scale 2 (`[float]`),
    /// zero_point 3 (`[long]`), details 4-5 (union), quantized_dimension 6.
    QuantizationParameters
);
impl<'a> QuantizationParameters<'a> {
    offset!(scale, Vector<'a, f32>, 2);
    offset!(zero_point, Vector<'a, i64>, 3);
    scalar!(details_type, u8, 4, 0);
    scalar!(quantized_dimension, i32, 6, 0);
}
impl Verifiable for QuantizationParameters<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<Vector<f32>>>("scale", slot(2), false)?
            .visit_field::<ForwardsUOffset<Vector<i64>>>("zero_point", slot(3), false)?
            .visit_field::<u8>("details_type", slot(4), false)?
            .visit_field::<i32>("quantized_dimension", slot(6), false)?
            .finish();
        Ok(())
    }
}

table!(
    /// `table Operator`: opcode_index 0, inputs 1, outputs 2,
    /// builtin_options_type 3 (ubyte), builtin_options 4 (union value),
    /// intermediates 8.
    Operator
);
impl<'a> Operator<'a> {
    scalar!(opcode_index, u32, 0, 0);
    offset!(inputs, Vec32<'a>, 1);
    offset!(outputs, Vec32<'a>, 2);
    scalar!(builtin_options_type, u8, 3, 0);
    /// The options table when its union type is `expected`.
    fn options<T: Follow<'a, Inner = T> + 'a>(&self, expected: u8) -> Option<T> {
        if self.builtin_options_type() != expected {
            return None;
        }
        // SAFETY: the verifier checked the union value as the table type
        // its union type names (see `verify_options`); `T` is that type.
        unsafe { self.tab.get::<ForwardsUOffset<T>>(slot(4), None) }
    }
    pub fn conv2d_options(&self) -> Option<Conv2DOptions<'a>> {
        self.options(options::CONV_2D)
    }
    pub fn depthwise_options(&self) -> Option<DepthwiseConv2DOptions<'a>> {
        self.options(options::DEPTHWISE_CONV_2D)
    }
    pub fn pool2d_options(&self) -> Option<Pool2DOptions<'a>> {
        self.options(options::POOL_2D)
    }
    pub fn fully_connected_options(&self) -> Option<FullyConnectedOptions<'a>> {
        self.options(options::FULLY_CONNECTED)
    }
    pub fn softmax_options(&self) -> Option<SoftmaxOptions<'a>> {
        self.options(options::SOFTMAX)
    }
    pub fn concatenation_options(&self) -> Option<ConcatenationOptions<'a>> {
        self.options(options::CONCATENATION)
    }
    pub fn add_options(&self) -> Option<AddOptions<'a>> {
        self.options(options::ADD)
    }
}

/// `union BuiltinOptions` type ids (schema order; 0 is NONE).
pub mod options {
    pub const CONV_2D: u8 = 1;
    pub const DEPTHWISE_CONV_2D: u8 = 2;
    pub const POOL_2D: u8 = 5;
    pub const FULLY_CONNECTED: u8 = 8;
    pub const SOFTMAX: u8 = 9;
    pub const CONCATENATION: u8 = 10;
    pub const ADD: u8 = 11;
}

fn verify_options(kind: u8, v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
    match kind {
        options::CONV_2D => v.verify_union_variant::<ForwardsUOffset<Conv2DOptions>>("Conv2DOptions", pos),
        options::DEPTHWISE_CONV_2D => {
            v.verify_union_variant::<ForwardsUOffset<DepthwiseConv2DOptions>>("DepthwiseConv2DOptions", pos)
        }
        options::POOL_2D => v.verify_union_variant::<ForwardsUOffset<Pool2DOptions>>("Pool2DOptions", pos),
        options::FULLY_CONNECTED => {
            v.verify_union_variant::<ForwardsUOffset<FullyConnectedOptions>>("FullyConnectedOptions", pos)
        }
        options::SOFTMAX => v.verify_union_variant::<ForwardsUOffset<SoftmaxOptions>>("SoftmaxOptions", pos),
        options::CONCATENATION => {
            v.verify_union_variant::<ForwardsUOffset<ConcatenationOptions>>("ConcatenationOptions", pos)
        }
        options::ADD => v.verify_union_variant::<ForwardsUOffset<AddOptions>>("AddOptions", pos),
        // Options the importer never reads need no verification.
        _ => Ok(()),
    }
}

impl Verifiable for Operator<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<u32>("opcode_index", slot(0), false)?
            .visit_field::<ForwardsUOffset<Vec32>>("inputs", slot(1), false)?
            .visit_field::<ForwardsUOffset<Vec32>>("outputs", slot(2), false)?
            .visit_union::<u8, _>(
                "builtin_options_type",
                slot(3),
                "builtin_options",
                slot(4),
                false,
                verify_options,
            )?
            .finish();
        Ok(())
    }
}

/// Declares an options table whose fields are all scalars.
macro_rules! scalar_options {
    ($(#[$m:meta])* $name:ident { $($fn:ident: $ty:ty = $id:expr, $default:expr;)* }) => {
        table!($(#[$m])* $name);
        impl<'a> $name<'a> {
            $(scalar!($fn, $ty, $id, $default);)*
        }
        impl Verifiable for $name<'_> {
            fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
                v.visit_table(pos)?
                    $(.visit_field::<$ty>(stringify!($fn), slot($id), false)?)*
                    .finish();
                Ok(())
            }
        }
    };
}

scalar_options!(
    /// `table Conv2DOptions`.
    Conv2DOptions {
        padding: i8 = 0, 0;
        stride_w: i32 = 1, 0;
        stride_h: i32 = 2, 0;
        fused_activation_function: i8 = 3, 0;
        dilation_w_factor: i32 = 4, 1;
        dilation_h_factor: i32 = 5, 1;
    }
);
scalar_options!(
    /// `table DepthwiseConv2DOptions`.
    DepthwiseConv2DOptions {
        padding: i8 = 0, 0;
        stride_w: i32 = 1, 0;
        stride_h: i32 = 2, 0;
        depth_multiplier: i32 = 3, 0;
        fused_activation_function: i8 = 4, 0;
        dilation_w_factor: i32 = 5, 1;
        dilation_h_factor: i32 = 6, 1;
    }
);
scalar_options!(
    /// `table Pool2DOptions`.
    Pool2DOptions {
        padding: i8 = 0, 0;
        stride_w: i32 = 1, 0;
        stride_h: i32 = 2, 0;
        filter_width: i32 = 3, 0;
        filter_height: i32 = 4, 0;
        fused_activation_function: i8 = 5, 0;
    }
);
scalar_options!(
    /// `table FullyConnectedOptions`.
    FullyConnectedOptions {
        fused_activation_function: i8 = 0, 0;
        weights_format: i8 = 1, 0;
        keep_num_dims: bool = 2, false;
    }
);
scalar_options!(
    /// `table SoftmaxOptions`.
    SoftmaxOptions {
        beta: f32 = 0, 0.0;
    }
);
scalar_options!(
    /// `table ConcatenationOptions`.
    ConcatenationOptions {
        axis: i32 = 0, 0;
        fused_activation_function: i8 = 1, 0;
    }
);
scalar_options!(
    /// `table AddOptions` (field 1, pot_scale_int16, concerns int16 only).
    AddOptions {
        fused_activation_function: i8 = 0, 0;
    }
);
/// The file identifier at bytes 4..8 of a TFLite flatbuffer.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// Checks the header and runs the flatbuffers verifier over every field
/// the accessors above read. Bounded: at most `max_tables` tables and
/// `max_depth` nesting, apparent size at most the verifier's default.
pub fn parse_model(bytes: &[u8]) -> anyhow::Result<Model<'_>> {
    if bytes.len() < 8 {
        anyhow::bail!("not a TFLite model: {} bytes, too short for a flatbuffer header", bytes.len());
    }
    if &bytes[4..8] != FILE_IDENTIFIER {
        anyhow::bail!(
            "not a TFLite model: file identifier {:?} at bytes 4..8, expected \"TFL3\"",
            String::from_utf8_lossy(&bytes[4..8])
        );
    }
    let opts = VerifierOptions { max_depth: 32, max_tables: 1_000_000, ..VerifierOptions::default() };
    flatbuffers::root_with_opts::<Model>(&opts, bytes)
        .map_err(|e| anyhow::anyhow!("corrupt TFLite flatbuffer: {e}"))
}

/// `enum BuiltinOperator` names, indexed by code (0..160 of the schema).
#[rustfmt::skip]
pub const BUILTIN_NAMES: [&str; 160] = [
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION",
    "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR",
    "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL",
    "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP",
    "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU",
    "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL",
    "LESS_EQUAL", "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE",
    "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN",
    "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND",
    "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE",
    "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE",
    "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS",
    "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG",
    "ROUND", "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE", "BROADCAST_TO", "RFFT2D", "CONV_3D",
    "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT",
    "HASHTABLE_SIZE", "REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE",
    "ASSIGN_VARIABLE", "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM",
    "MULTINOMIAL", "GELU", "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1", "UNSORTED_SEGMENT_PROD",
    "UNSORTED_SEGMENT_MAX", "UNSORTED_SEGMENT_SUM", "ATAN2", "UNSORTED_SEGMENT_MIN", "SIGN",
    "BITCAST",
];

/// The name of a builtin operator code.
pub fn builtin_name(code: i32) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|c| BUILTIN_NAMES.get(c))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("BUILTIN_{code}"))
}
