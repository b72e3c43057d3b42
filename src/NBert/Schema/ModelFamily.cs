namespace NBert.Schema;

/// <summary>
/// The BERT-like families NBert loads (config.json's <c>model_type</c>). Each is a configuration of the one encoder, not
/// a copy of it: the same embeddings, layers and heads, with a few switches (<see cref="BertConfig.HasTokenTypes"/>,
/// <see cref="BertConfig.PoolerActivation"/>, ...) and its own checkpoint names (<see cref="FamilyNames"/>). The
/// <see cref="BertArchitecture"/> is the head, the family the body: <c>DistilBertForSequenceClassification</c> is
/// <see cref="DistilBert"/> with <see cref="BertArchitecture.BertForSequenceClassification"/>.
/// </summary>
public enum ModelFamily
{
    /// <summary>BERT (<c>model_type</c> <c>bert</c>): the names and switches every other family is described against.</summary>
    Bert,
    /// <summary>DistilBERT (<c>distilbert</c>): no token types, no pooler, no dropout after the attention's output layer;
    /// sequence classification through <c>pre_classifier</c> and ReLU; config fields <c>dim</c>, <c>hidden_dim</c>,
    /// <c>n_layers</c>, <c>n_heads</c>, <c>activation</c>; its weights under <c>distilbert.transformer.layer.N</c>.</summary>
    DistilBert,
    /// <summary>RoBERTa (<c>roberta</c>): BERT's body under <c>roberta.</c>, position ids counted from
    /// <c>pad_token_id + 1</c> over the tokens that are not padding, one token type; sequence classification through
    /// <c>classifier.dense</c> + tanh + <c>classifier.out_proj</c> on <c>&lt;s&gt;</c> (dropout before both), the masked-LM
    /// head <c>lm_head</c> with a GELU whatever <c>hidden_act</c> says.</summary>
    Roberta,
    /// <summary>ELECTRA (<c>electra</c>): BERT's layers under <c>electra.</c>, with embeddings of <c>embedding_size</c>
    /// projected to <c>hidden_size</c> by <c>embeddings_project</c> when the two differ; no pooler; sequence classification
    /// through <c>classifier.dense</c> + GELU + <c>classifier.out_proj</c> on the first token (dropout before both);
    /// <c>ElectraForPreTraining</c> is the discriminator, <c>discriminator_predictions</c>: one logit per token;
    /// <c>ElectraForMaskedLM</c> the generator, whose masked-LM head maps hidden_size back to embedding_size
    /// (<c>generator_predictions</c>, exact GELU, LayerNorm) before the tied <c>generator_lm_head</c>.</summary>
    Electra,
}

/// <summary>
/// Each family's checkpoint names for the one encoder's parameters. A model names its parameters as BERT does (the
/// <em>model name</em>, <see cref="ParameterSlot.Name"/>: <c>encoder.layer.0.attention.self.query.weight</c>); a
/// checkpoint of another family names them its own way (<c>distilbert.transformer.layer.0.attention.q_lin.weight</c>),
/// mapped here both ways, so that loading and saving speak the family's names and everything between speaks one.
/// </summary>
public static class FamilyNames
{
    /// <summary>The family of config.json's <c>model_type</c>, or null for one NBert does not load.</summary>
    public static ModelFamily? FromModelType(string? modelType) => modelType switch
    {
        null or "bert" => ModelFamily.Bert,
        "distilbert" => ModelFamily.DistilBert,
        "roberta" => ModelFamily.Roberta,
        "electra" => ModelFamily.Electra,
        _ => null,
    };

    /// <summary>config.json's <c>model_type</c> of a family.</summary>
    public static string ModelType(ModelFamily family) => family switch
    {
        ModelFamily.DistilBert => "distilbert",
        ModelFamily.Roberta => "roberta",
        ModelFamily.Electra => "electra",
        _ => "bert",
    };

    /// <summary>The prefix of transformers' class names (<c>DistilBert</c> in <c>DistilBertForMaskedLM</c>).</summary>
    public static string ClassPrefix(ModelFamily family) => family switch
    {
        ModelFamily.DistilBert => "DistilBert",
        ModelFamily.Roberta => "Roberta",
        ModelFamily.Electra => "Electra",
        _ => "Bert",
    };

    /// <summary>transformers' <c>base_model_prefix</c>: the body's names start with it in a head's checkpoint.</summary>
    public static string BasePrefix(ModelFamily family) => family switch
    {
        ModelFamily.DistilBert => "distilbert",
        ModelFamily.Roberta => "roberta",
        ModelFamily.Electra => "electra",
        _ => "bert",
    };

    /// <summary>The heads a family has in transformers (a DistilBERT has no next-sentence head, for example). ELECTRA's
    /// pre-training head is its discriminator (<c>ElectraForPreTraining</c>), its masked-LM head the generator's
    /// (<c>ElectraForMaskedLM</c>).</summary>
    public static bool Supports(ModelFamily family, BertArchitecture architecture) => family switch
    {
        ModelFamily.DistilBert or ModelFamily.Roberta =>
            architecture is not (BertArchitecture.BertForPreTraining or BertArchitecture.BertForNextSentencePrediction),
        ModelFamily.Electra => architecture != BertArchitecture.BertForNextSentencePrediction,
        _ => true,
    };

    /// <summary>transformers' class name of <paramref name="architecture"/> in <paramref name="family"/>
    /// (<c>DistilBertForSequenceClassification</c>).</summary>
    public static string ClassName(ModelFamily family, BertArchitecture architecture) =>
        ClassPrefix(family) + architecture.ToString()["Bert".Length..];

    /// <summary>The name a parameter (by model name) has in a transformers checkpoint of <paramref name="architecture"/>
    /// in <paramref name="family"/>, the base model's prefix included where transformers writes it.</summary>
    public static string CheckpointName(string parameter, BertArchitecture architecture, ModelFamily family)
    {
        string name = family switch
        {
            ModelFamily.DistilBert => DistilBertName(parameter),
            ModelFamily.Roberta => RobertaName(parameter, architecture),
            ModelFamily.Electra => ElectraName(parameter, architecture),
            _ => parameter,
        };
        // The base model's parts, by the family's name (DistilBERT's pre_classifier and RoBERTa's classifier.dense are the
        // head's, though they fill the pooler's slot).
        bool body = name.StartsWith("embeddings.", StringComparison.Ordinal) || name.StartsWith("embeddings_project.", StringComparison.Ordinal)
            || name.StartsWith("encoder.", StringComparison.Ordinal)
            || name.StartsWith("transformer.", StringComparison.Ordinal) || name.StartsWith("pooler.", StringComparison.Ordinal);
        return body && architecture != BertArchitecture.BertModel ? BasePrefix(family) + "." + name : name;
    }

    // Model name -> DistilBERT's: the layer's parts renamed, the heads' layers named after what they do.
    private static readonly (string Model, string Family)[] DistilBertLayer =
    [
        ("attention.self.query.", "attention.q_lin."), ("attention.self.key.", "attention.k_lin."), ("attention.self.value.", "attention.v_lin."),
        ("attention.output.dense.", "attention.out_lin."), ("attention.output.LayerNorm.", "sa_layer_norm."),
        ("intermediate.dense.", "ffn.lin1."), ("output.dense.", "ffn.lin2."), ("output.LayerNorm.", "output_layer_norm."),
    ];

    private static readonly (string Model, string Family)[] DistilBertHeads =
    [
        ("pooler.dense.", "pre_classifier."), ("cls.predictions.transform.dense.", "vocab_transform."),
        ("cls.predictions.transform.LayerNorm.", "vocab_layer_norm."), ("cls.predictions.decoder.", "vocab_projector."),
        ("cls.predictions.bias", "vocab_projector.bias"),
    ];

    private static readonly (string Model, string Family)[] RobertaMaskedLm =
    [
        ("cls.predictions.transform.dense.", "lm_head.dense."), ("cls.predictions.transform.LayerNorm.", "lm_head.layer_norm."),
        ("cls.predictions.decoder.", "lm_head.decoder."), ("cls.predictions.bias", "lm_head.bias"),
    ];

    private static readonly (string Model, string Family)[] ElectraMaskedLm =
    [
        ("cls.predictions.transform.dense.", "generator_predictions.dense."), ("cls.predictions.transform.LayerNorm.", "generator_predictions.LayerNorm."),
        ("cls.predictions.decoder.", "generator_lm_head."), ("cls.predictions.bias", "generator_lm_head.bias"),
    ];

    /// <summary>ELECTRA's names: BERT's body (with <c>embeddings_project</c>); the sequence classifier's as RoBERTa's
    /// (<c>classifier.dense</c>, <c>classifier.out_proj</c>); the generator's masked-LM head <c>generator_predictions</c> (dense
    /// from hidden_size to embedding_size, LayerNorm) and <c>generator_lm_head</c>; the discriminator's are the model's own.</summary>
    private static string ElectraName(string parameter, BertArchitecture architecture)
    {
        foreach (var (model, family) in ElectraMaskedLm)
            if (parameter.StartsWith(model, StringComparison.Ordinal)) return family + parameter[model.Length..];
        return RobertaName(parameter, architecture);
    }

    /// <summary>RoBERTa's names: BERT's body; the sequence classifier's dense layer (the model's pooler slot) is
    /// <c>classifier.dense</c> and its output layer <c>classifier.out_proj</c>; the masked-LM head is <c>lm_head</c>.</summary>
    private static string RobertaName(string parameter, BertArchitecture architecture)
    {
        if (architecture == BertArchitecture.BertForSequenceClassification)
        {
            if (parameter.StartsWith("pooler.dense.", StringComparison.Ordinal)) return "classifier.dense." + parameter["pooler.dense.".Length..];
            if (parameter.StartsWith("classifier.", StringComparison.Ordinal)) return "classifier.out_proj." + parameter["classifier.".Length..];
        }
        foreach (var (model, family) in RobertaMaskedLm)
            if (parameter.StartsWith(model, StringComparison.Ordinal)) return family + parameter[model.Length..];
        return parameter;
    }

    private static string DistilBertName(string parameter)
    {
        const string Layer = "encoder.layer.";
        if (parameter.StartsWith(Layer, StringComparison.Ordinal))
        {
            int dot = parameter.IndexOf('.', Layer.Length);
            string index = parameter[Layer.Length..dot], rest = parameter[(dot + 1)..];
            foreach (var (model, family) in DistilBertLayer)
                if (rest.StartsWith(model, StringComparison.Ordinal)) return $"transformer.layer.{index}.{family}{rest[model.Length..]}";
        }
        foreach (var (model, family) in DistilBertHeads)
            if (parameter.StartsWith(model, StringComparison.Ordinal)) return family + parameter[model.Length..];
        return parameter;
    }
}
