// SPDX-License-Identifier: MIT
// Proxies as get_code must recognise them: an EIP-1967 proxy (the implementation in the
// standard slot) and an EIP-1967 beacon proxy (the beacon in its slot, which names the
// implementation). EIP-1167 clones need no Solidity: tests deploy their 45 bytes directly.
pragma solidity ^0.8.20;

abstract contract TestDelegating {
    function _implementation() internal view virtual returns (address);

    fallback() external payable {
        address target = _implementation();
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }
}

contract TestEip1967Proxy is TestDelegating {
    // bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1)
    bytes32 private constant IMPLEMENTATION_SLOT =
        0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;

    constructor(address implementation) {
        assembly {
            sstore(IMPLEMENTATION_SLOT, implementation)
        }
    }

    function _implementation() internal view override returns (address target) {
        assembly {
            target := sload(IMPLEMENTATION_SLOT)
        }
    }
}

contract TestBeacon {
    address public implementation;

    constructor(address implementation_) {
        implementation = implementation_;
    }
}

contract TestBeaconProxy is TestDelegating {
    // bytes32(uint256(keccak256("eip1967.proxy.beacon")) - 1)
    bytes32 private constant BEACON_SLOT =
        0xa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6cb3582b35133d50;

    constructor(address beacon) {
        assembly {
            sstore(BEACON_SLOT, beacon)
        }
    }

    function _implementation() internal view override returns (address) {
        address beacon;
        assembly {
            beacon := sload(BEACON_SLOT)
        }
        return TestBeacon(beacon).implementation();
    }
}
