//! Realistic chat content in Chinese and English for seeded history and
//! lively traffic.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// Customers: (id, name, Kchat visitor id, ccmessaging userId).
pub(crate) const CUSTOMERS: &[(&str, &str, u64, &str)] = &[
    ("c-zhangwei", "张伟", 547, "1659490221026188522"),
    ("c-lina", "李娜", 548, "1659490221026188523"),
    ("c-wanglei", "王磊", 549, "1659490221026188524"),
    ("c-chenjing", "陈静", 550, "1659490221026188525"),
    ("c-emily", "Emily Johnson", 551, "1659490221026188526"),
    ("c-michael", "Michael Brown", 552, "1659490221026188527"),
    ("c-sarah", "Sarah Lee", 553, "1659490221026188528"),
    ("c-liuyang", "刘洋", 554, "1659490221026188529"),
];

/// The ccmessaging users the generated traffic and history speak for: a
/// gateway syncing them sees everything the simulator produces.
pub const DEMO_CCM_USERS: &[&str] = &[
    "1659490221026188522",
    "1659490221026188523",
    "1659490221026188524",
    "1659490221026188525",
    "1659490221026188526",
    "1659490221026188527",
    "1659490221026188528",
    "1659490221026188529",
];

pub(crate) const CUSTOMER_LINES: &[&str] = &[
    "你好，请问在吗？",
    "我的订单还没有发货，能帮我查一下吗？订单号 2024031588812",
    "退款什么时候能到账？",
    "这个商品现在有优惠券可以用吗",
    "收到的杯子有破损，怎么处理？",
    "可以开增值税专用发票吗？",
    "收货地址填错了，能改成上海市浦东新区世纪大道100号吗",
    "好的，谢谢你 👍",
    "Hi, is anyone there?",
    "My order hasn't arrived yet, could you check? Order #A-10293",
    "How do I reset my password?",
    "Can I change the delivery address to 221B Baker Street?",
    "The app keeps crashing when I open the payment page.",
    "Thanks, that solved it!",
];

pub(crate) const AGENT_LINES: &[&str] = &[
    "您好，很高兴为您服务，请问有什么可以帮您？",
    "请稍等，我帮您查询一下。",
    "已为您加急处理，预计明天送达。",
    "退款将在1-3个工作日内原路退回，请留意。",
    "非常抱歉给您带来不便，我们会为您补发一件新的。",
    "还有其他可以帮您的吗？",
    "Hello! How can I help you today?",
    "Let me check that for you, one moment please.",
    "I've escalated your request; you should hear back within 24 hours.",
    "Sorry about that! A replacement is on its way.",
    "Is there anything else I can help with?",
];

pub(crate) const ROBOT_LINES: &[&str] = &[
    "您好，我是智能助手小智，请描述您的问题。",
    "猜您想问：如何申请退款？回复“人工”转人工客服。",
    "Hi, I'm the virtual assistant. Type \"agent\" to talk to a person.",
    "Here are some articles that might help: Shipping times, Returns.",
];

pub(crate) const SYSTEM_LINES: &[&str] = &[
    "会话已接入，客服正在为您服务",
    "客服已离开会话",
    "The conversation has been transferred.",
    "对话超时已自动结束",
];

pub(crate) const HTML_LINES: &[&str] = &[
    "<p>你好 &amp; hi</p>",
    "<p>请问<b>退货</b>流程是什么？</p>",
    "<div>Order&nbsp;#A-10293 &lt;urgent&gt;</div>",
    "<p>Thanks!<br/>谢谢</p>",
];

/// Files: (name, size in bytes, MIME type, extension).
pub(crate) const FILES: &[(&str, u64, &str, &str)] = &[
    ("发票.pdf", 204_800, "application/pdf", "pdf"),
    ("invoice-2024-03.pdf", 88_213, "application/pdf", "pdf"),
    (
        "物流单.xlsx",
        15_320,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    ("error-log.txt", 2_048, "text/plain", "txt"),
];

/// Cards: (title, description, redirect URL).
pub(crate) const CARDS: &[(&str, &str, &str)] = &[
    (
        "订单详情",
        "订单号 2024031588812 · ¥299.00",
        "https://shop.example.com/orders/2024031588812",
    ),
    (
        "退货指引",
        "7天无理由退货，点击查看流程",
        "https://help.example.com/returns",
    ),
    (
        "Order A-10293",
        "2 items · $58.40 · shipped",
        "https://shop.example.com/orders/A-10293",
    ),
];

/// Locations: (latitude, longitude, description).
pub(crate) const LOCATIONS: &[(f64, f64, &str)] = &[
    (31.2304, 121.4737, "上海市黄浦区人民广场"),
    (39.9042, 116.4074, "北京市东城区天安门"),
    (51.5074, -0.1278, "London Bridge"),
];

/// Picks one element; the lists above are never empty.
pub(crate) fn pick<'a, T>(rng: &mut StdRng, list: &'a [T]) -> &'a T {
    list.choose(rng).unwrap_or(&list[0])
}

/// A random image URL.
pub(crate) fn image_url(rng: &mut StdRng) -> String {
    format!("https://img.example.com/chat/{:08x}.jpg", rng.gen::<u32>())
}

/// A 1x1 PNG, the bytes served for generated images.
const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// Bytes served for a generated upload: a real PNG for images, the start of
/// an MP3 or MP4 for audio and video, a line of text otherwise.
pub(crate) fn sample_bytes(mime: &str, name: &str) -> Vec<u8> {
    if mime.starts_with("image") {
        TINY_PNG.to_vec()
    } else if mime.starts_with("audio") {
        b"ID3\x03\x00\x00\x00\x00\x00\x00".to_vec()
    } else if mime.starts_with("video") {
        b"\x00\x00\x00\x18ftypmp42".to_vec()
    } else {
        format!("simulated file {name}\n").into_bytes()
    }
}
